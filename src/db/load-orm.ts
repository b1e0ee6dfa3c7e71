// Loads MikroORM with synchronous contexts instead of AsyncLocalStorage.
//
// MikroORM keeps three contexts in an AsyncLocalStorage each: a flush in
// progress (UnitOfWork), a transaction (em.transactional) and a request
// (RequestContext). Keyward hands its EntityManager forks around explicitly
// and uses neither of the last two (src/db/transaction.ts), but every
// em.flush() runs the first. On Node 20 the first run() of any
// AsyncLocalStorage switches on async-hooks context propagation for the
// whole process, for good: every HTTP/2 stream, tick and native callback of
// every later request pays for it, about 8% of the instructions of a cached
// VerifyKey (callgrind, main thread).
//
// MikroORM builds those contexts from `globalThis.AsyncLocalStorage` when one
// is defined (@mikro-orm/core utils/AsyncContext.js), and ships the same
// synchronous store as its fallback for runtimes without AsyncLocalStorage.
// MikroORM reads the flush context to refuse a flush started from a flush
// event handler and to skip auto-flush while flushing; Keyward registers no
// flush event handlers, so nothing it does depends on the store across an
// await.
//
// The global is set only while @mikro-orm/core is first evaluated (it makes
// its contexts at load), then put back. So this module must be imported
// before anything else imports MikroORM: bin/keyward.js and the vitest setup
// import it first, startServer warns if that did not happen, and
// test/unit/async-context.test.ts checks it.
import { SyncContext } from './sync-context.js';

const g = globalThis as { AsyncLocalStorage?: unknown };
const previous = Object.getOwnPropertyDescriptor(g, 'AsyncLocalStorage');
g.AsyncLocalStorage = SyncContext;
let orm: typeof import('@mikro-orm/core');
try {
  orm = await import('@mikro-orm/core');
} finally {
  if (previous) Object.defineProperty(g, 'AsyncLocalStorage', previous);
  else delete g.AsyncLocalStorage;
}

/** Whether MikroORM runs with SyncContext (false if something imported it before this module). */
export const ormContextsAreSynchronous = (orm.TransactionContext as unknown as { storage: unknown }).storage instanceof SyncContext;
