import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ormContextsAreSynchronous } from '../../src/db/load-orm.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

// An AsyncLocalStorage that runs once switches on async-hooks propagation for
// the whole process for good: every later VerifyKey pays for it.
// src/db/transaction.ts and src/db/load-orm.ts explain.
describe('the process never switches on AsyncLocalStorage', () => {
  it('src/ starts transactions with inTransaction(), not em.transactional() or a RequestContext', () => {
    // load-orm.ts is the one place that deals with MikroORM's contexts; tracing.ts
    // turns on OpenTelemetry's AsyncLocalStorage context, only when tracing is configured.
    const offenders = sources(SRC)
      .filter((file) => !file.endsWith(path.join('db', 'load-orm.ts')) && !file.endsWith(path.join('src', 'tracing.ts')))
      .flatMap((file) => {
        // Code only: comments may name what they avoid.
        const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
        return /\.transactional\(|RequestContext|TransactionContext|AsyncLocalStorage/.test(text) ? [path.relative(SRC, file)] : [];
      });
    expect(offenders).toEqual([]);
  });

  it('MikroORM keeps its flush context without AsyncLocalStorage (load-orm.ts ran first)', () => {
    expect(ormContextsAreSynchronous).toBe(true);
  });
});
