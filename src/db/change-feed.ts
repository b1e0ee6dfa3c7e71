// The change feed's message: what a committed change announces to every
// process sharing the database, over PostgreSQL LISTEN/NOTIFY. Sent by the
// ChangeBus (src/domain/changes.ts), received by the ChangeListener
// (change-listener.ts).

/** A committed change that can alter how keys verify or SDK keys authenticate. */
export interface Change {
  /** Keys updated, rotated, revoked or deleted. */
  keys?: string[];
  /** A workspace deleted, or one of its scopes renamed or deleted. */
  workspace?: string;
  /** An SDK key revoked. */
  sdkKey?: string;
  /** A new token signing key made active (the previous one retired). */
  signingKey?: string;
  /** SHA-256 hashes of secrets created (a key created, rotated or imported): for the membership filter. */
  secrets?: string[];
  /** A barrier (src/db/change-listener.ts): heard only by the listener that sent it. */
  barrier?: string;
}

export const CHANGE_CHANNEL = 'keyward_changes';
