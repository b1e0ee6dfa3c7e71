import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export interface Cursor {
  /** Number of rows to fetch (one more than the page, to see if there is a next). */
  limit: number;
  /** Return rows whose sort key is greater than this, if set. */
  after?: string;
}

// A page token is opaque to callers: base64url of the last sort key and a
// digest of the filters it was issued for, so a token cannot be replayed
// against a different query.
function filterDigest(filters: unknown): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 12);
}

/**
 * Reads a page request. `isSortKey` checks the cursor's shape, so that a
 * forged token fails here and not in the database.
 */
export function openCursor(req: PageRequest, filters: unknown, isSortKey: (s: string) => boolean): Cursor {
  if (!Number.isInteger(req.pageSize) || req.pageSize < 0) {
    throw invalidArgument('page_size', 'must not be negative');
  }
  const size = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(req.pageSize, MAX_PAGE_SIZE);
  if (req.pageToken === '') return { limit: size + 1 };
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(req.pageToken, 'base64url').toString('utf8'));
  } catch {
    throw invalidArgument('page_token', 'is not a token issued by this listing');
  }
  const t = decoded as { a?: unknown; f?: unknown };
  if (typeof t !== 'object' || t === null || typeof t.a !== 'string' || t.f !== filterDigest(filters) || !isSortKey(t.a)) {
    throw invalidArgument('page_token', 'is not a token issued by this listing');
  }
  return { limit: size + 1, after: t.a };
}

/** Cuts the extra row off and issues the token for the next page. */
export function closePage<T>(rows: T[], cursor: Cursor, filters: unknown, sortKey: (t: T) => string): Page<T> {
  if (rows.length < cursor.limit) return { items: rows, nextPageToken: '' };
  const items = rows.slice(0, cursor.limit - 1);
  const token = { a: sortKey(items[items.length - 1]!), f: filterDigest(filters) };
  return { items, nextPageToken: Buffer.from(JSON.stringify(token)).toString('base64url') };
}
