import type { EntityManager } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { inTransaction } from '../db/transaction.js';

import { CHANGE_CHANNEL, type Change } from '../db/change-feed.js';

export type { Change } from '../db/change-feed.js';

export type ChangeSubscriber = (change: Change) => void;

/**
 * Where changes are announced. Inside the transaction that makes a change,
 * `pg_notify` queues it for every other replica (Postgres delivers it on
 * commit, never for a rollback); after the commit, this process's own
 * subscribers hear it synchronously, so a revoke is seen here before the RPC
 * that made it returns.
 */
export class ChangeBus {
  private readonly subscribers: ChangeSubscriber[] = [];

  constructor(private readonly notifyOthers: boolean) {}

  subscribe(s: ChangeSubscriber): void {
    this.subscribers.push(s);
  }

  /** Delivers a change to this process's subscribers (also used for changes heard from others). */
  deliver(change: Change): void {
    for (const s of this.subscribers) s(change);
  }

  /**
   * For changes a single statement makes outside a transaction
   * (src/domain/key-insert.ts): the pg_notify payloads that statement sends on
   * CHANGE_CHANNEL (none when no other process listens). Once it has
   * succeeded, deliver() each change here.
   */
  payloads(changes: Change[]): string[] {
    return this.notifyOthers ? changes.map((c) => JSON.stringify(c)) : [];
  }

  /**
   * Runs `work` in a transaction on a fork of `em` (inTransaction makes the
   * fork, so callers pass their `em` as is); the changes it reports are
   * announced to other replicas within that transaction and to this process
   * after commit.
   */
  async transaction<R>(em: EntityManager, work: (em: EntityManager, report: (c: Change) => void) => Promise<R>): Promise<R> {
    const changes: Change[] = [];
    const result = await inTransaction(em, async (tem) => {
      const r = await work(tem, (c) => changes.push(c));
      if (this.notifyOthers) {
        for (const c of changes) {
          await (tem as SqlEntityManager).execute('select pg_notify(?, ?)', [CHANGE_CHANNEL, JSON.stringify(c)]);
        }
      }
      return r;
    });
    for (const c of changes) this.deliver(c);
    return result;
  }
}
