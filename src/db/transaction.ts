import type { EntityManager } from '@mikro-orm/core';

/**
 * Runs `work` in a database transaction on a fresh fork of `em`, committing
 * (after a flush) when it resolves and rolling back when it throws.
 *
 * Why not `em.transactional()`: MikroORM carries that transaction in an
 * AsyncLocalStorage, and the first `run()` of one switches on async-hooks
 * context propagation for the whole process, for good. Every HTTP/2 stream,
 * tick and native callback of every later request then pays for it (about a
 * tenth of a cached VerifyKey's CPU, measured with `npm run bench`). The fork
 * made here holds its transaction itself; pass it (the `em` given to `work`)
 * to everything that must run inside the transaction.
 */
export async function inTransaction<R>(em: EntityManager, work: (em: EntityManager) => Promise<R>): Promise<R> {
  const tem = em.fork();
  await tem.begin();
  let result: R;
  try {
    result = await work(tem);
  } catch (e) {
    await tem.rollback().catch(() => {
      // The connection is gone or the transaction already ended; the cause is `e`.
    });
    throw e;
  }
  // commit() flushes first; if the flush or commit fails, roll back what is left.
  try {
    await tem.commit();
  } catch (e) {
    await tem.rollback().catch(() => {});
    throw e;
  }
  return result;
}
