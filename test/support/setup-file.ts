// Runs in every test file: whatever it recorded for the secret-hygiene scan
// (test/support/hygiene.ts) is written out when the file ends.
import { afterAll } from 'vitest';
import { flushHygiene } from './hygiene.js';

afterAll(() => flushHygiene());
