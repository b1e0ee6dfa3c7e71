import { Migration0001Initial } from './0001_initial.js';
import { Migration0004SigningKeys } from './0004_signing_keys.js';

/** Every migration, in order. Applied at start and by `keyward migrate`. */
export const migrationsList = [
  { name: '0001_initial', class: Migration0001Initial },
  { name: '0004_signing_keys', class: Migration0004SigningKeys },
];
