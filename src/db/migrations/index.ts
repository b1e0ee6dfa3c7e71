import { Migration0001Initial } from './0001_initial.js';
import { Migration0002KeyLimits } from './0002_key_limits.js';
import { Migration0003Insight } from './0003_insight.js';
import { Migration0004SigningKeys } from './0004_signing_keys.js';
import { Migration0005RevokeOrphanedKeys } from './0005_revoke_orphaned_keys.js';
import { Migration0006ConsoleAndPortal } from './0006_console_and_portal.js';
import { Migration0007NextSigningKey } from './0007_next_signing_key.js';
import { Migration0008ScopeActions } from './0008_scope_actions.js';
import { Migration0009Retention } from './0009_retention.js';
import { Migration0010WorkspaceUsage } from './0010_workspace_usage.js';
import { Migration0011PartialAggregateKey } from './0011_partial_aggregate_key.js';

/** Every migration, in order. Applied at start and by `keyward migrate`. */
export const migrationsList = [
  { name: '0001_initial', class: Migration0001Initial },
  { name: '0002_key_limits', class: Migration0002KeyLimits },
  { name: '0003_insight', class: Migration0003Insight },
  { name: '0004_signing_keys', class: Migration0004SigningKeys },
  { name: '0005_revoke_orphaned_keys', class: Migration0005RevokeOrphanedKeys },
  { name: '0006_console_and_portal', class: Migration0006ConsoleAndPortal },
  { name: '0007_next_signing_key', class: Migration0007NextSigningKey },
  { name: '0008_scope_actions', class: Migration0008ScopeActions },
  { name: '0009_retention', class: Migration0009Retention },
  { name: '0010_workspace_usage', class: Migration0010WorkspaceUsage },
  { name: '0011_partial_aggregate_key', class: Migration0011PartialAggregateKey },
];
