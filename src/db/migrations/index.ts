import { Migration0001Initial } from './0001_initial.js';

/** Every migration, in order. Applied at start and by `keyward migrate`. */
export const migrationsList = [{ name: '0001_initial', class: Migration0001Initial }];
