import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

// MikroORM's em.transactional() and RequestContext run an AsyncLocalStorage,
// which switches on async-hooks propagation for the whole process for good:
// every later VerifyKey pays ~10% more CPU. src/db/transaction.ts explains.
describe('the process never switches on AsyncLocalStorage', () => {
  it('src/ starts transactions with inTransaction(), not em.transactional() or a RequestContext', () => {
    const offenders = sources(SRC).flatMap((file) => {
      // Code only: comments may name what they avoid.
      const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      return /\.transactional\(|RequestContext|TransactionContext|AsyncLocalStorage/.test(text) ? [path.relative(SRC, file)] : [];
    });
    expect(offenders).toEqual([]);
  });
});
