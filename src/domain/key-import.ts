// ImportKeys' entries: each key's secret as it comes (plaintext in any
// format, or only its SHA-256), checked, and every error named by its entry.
import { hashApiKey, hasApiKeyShape, IMPORTED_KEY_RE, isWellFormedApiKey } from '../credentials/api-key.js';
import { DomainError, invalidArgument } from './errors.js';
import type { Wanted } from './grants.js';
import type { newKeyColumns } from './key-fields.js';
import type { KeyInput } from './key-types.js';

/** A key to import: its fields, and its secret or the secret's SHA-256. */
export interface ImportItem {
  key: KeyInput;
  plaintext: string;
  sha256: string;
}

/** A key about to be written: its columns, the grants it wants, its secret's hash and what may be shown of it. */
export interface NewKey {
  columns: ReturnType<typeof newKeyColumns>;
  wanted: Map<string, Wanted>;
  secret: { hash: string; masked: string; start: string };
}

const MAX_IMPORT = 1000;
const SHA256_RE = /^[0-9a-fA-F]{64}$/;

/** Runs `check` for entry `i`: an invalid argument then names the entry, `keys[i].<field>`. */
export function inEntry<T>(i: number, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof DomainError && e.kind === 'invalid_argument' && e.field !== undefined)
      throw invalidArgument(`keys[${i}].${e.field}`, e.problem ?? e.message);
    throw e;
  }
}

/** Every entry checked (`prepare` checks its fields), with its secret; a secret given twice is named. */
export function checkImport(items: ImportItem[], prepare: (item: ImportItem, i: number) => Omit<NewKey, 'secret'>): NewKey[] {
  if (items.length === 0 || items.length > MAX_IMPORT) throw invalidArgument('keys', `must have 1 to ${MAX_IMPORT} entries, got ${items.length}`);
  const seen = new Map<string, number>();
  return items.map((item, i) => {
    const secret = importedSecret(item, i);
    const first = seen.get(secret.hash);
    if (first !== undefined) throw invalidArgument(`keys[${i}]`, `has the same secret as keys[${first}]`);
    seen.set(secret.hash, i);
    const { columns, wanted } = prepare(item, i);
    return { columns, wanted, secret };
  });
}

function importedSecret(item: ImportItem, i: number): NewKey['secret'] {
  if (item.plaintext !== '' && item.sha256 !== '') throw invalidArgument(`keys[${i}].sha256`, 'must not be set together with plaintext (set one of them)');
  if (item.sha256 !== '') {
    if (!SHA256_RE.test(item.sha256)) throw invalidArgument(`keys[${i}].sha256`, 'must be 64 hex digits: the SHA-256 of the key as clients send it');
    return { hash: item.sha256.toLowerCase(), masked: '', start: '' };
  }
  const k = item.plaintext;
  if (k === '') throw invalidArgument(`keys[${i}].plaintext`, 'is required (or sha256)');
  if (!IMPORTED_KEY_RE.test(k)) throw invalidArgument(`keys[${i}].plaintext`, 'must be 8 to 512 printable ASCII characters, without spaces');
  if (hasApiKeyShape(k) && !isWellFormedApiKey(k)) {
    throw invalidArgument(`keys[${i}].plaintext`, 'has the shape of a Keyward key but its checksum does not match (VerifyKey would refuse it as a typo)');
  }
  // What may be shown of it: a few characters at each end of a long key, none of a short one.
  const shown = k.length >= 32 ? 4 : k.length >= 16 ? 2 : 0;
  return { hash: hashApiKey(k), masked: shown ? `${k.slice(0, shown)}****${k.slice(-shown)}` : '****', start: k.slice(0, shown) };
}
