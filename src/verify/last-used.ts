import { WriteBehind } from '../db/write-behind.js';
import { errorFields } from '../log.js';

/**
 * Records when keys were last used without a write per verification: uses
 * are gathered in memory and written in one statement every `flushMs`, and
 * once more on shutdown.
 */
export class LastUsedRecorder extends WriteBehind {
  private pending = new Map<string, number>();

  touch(keyId: string, at: number): void {
    this.pending.set(keyId, at);
  }

  protected async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    // One JSON parameter: the driver would expand a JS array parameter into a
    // list of scalars, which is no Postgres array.
    const uses = [...batch].map(([id, t]) => ({ id, t: new Date(t).toISOString() }));
    try {
      await this.orm.em.fork().execute(
        `update api_keys k set last_used_time = greatest(k.last_used_time, u.t)
           from jsonb_to_recordset(?::jsonb) as u(id uuid, t timestamptz)
          where k.id = u.id`,
        [JSON.stringify(uses)],
      );
    } catch (e) {
      // Keep the uses for the next attempt unless newer ones arrived.
      for (const [id, t] of batch) if (!this.pending.has(id)) this.pending.set(id, t);
      this.log.warn('could not record key usage; will retry', { keys: batch.size, ...errorFields(e) });
    }
  }
}
