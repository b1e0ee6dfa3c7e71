import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { invalidArgument } from './errors.js';
import { findVisibleKey } from './keys.js';
import type { Principal } from './principal.js';
import { checkTimeOrder, requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

const HOUR_MS = 3_600_000;
/** The longest range one request may ask for (hourly buckets: at most 2,208). */
const MAX_USAGE_RANGE_MS = 92 * 24 * HOUR_MS;

export interface TimeRange {
  start: Date | undefined;
  /** Unset means now. */
  end: Date | undefined;
}

export interface UsageCount {
  /** A verify code, e.g. `valid`, `revoked`. */
  code: string;
  count: number;
}

interface UsageBucket {
  /** Start of the hour. */
  hour: Date;
  counts: UsageCount[];
  total: number;
}

export interface UsageReport {
  buckets: UsageBucket[];
  totals: UsageCount[];
  total: number;
}

/** The hours [from, to) the range covers: from is start_time truncated to its hour. */
function checkRange(range: TimeRange, now = Date.now()): { from: Date; to: Date } {
  if (!range.start) throw invalidArgument('start_time', 'is required');
  const end = range.end ?? new Date(now);
  checkTimeOrder(range.start, end);
  if (end.getTime() - range.start.getTime() > MAX_USAGE_RANGE_MS) throw invalidArgument('end_time', 'must be at most 92 days after start_time');
  return { from: new Date(Math.floor(range.start.getTime() / HOUR_MS) * HOUR_MS), to: end };
}

interface UsageRow {
  hour_ms: number;
  code: string;
  n: number;
}

function report(rows: UsageRow[]): UsageReport {
  const buckets: UsageBucket[] = [];
  const totals = new Map<string, number>();
  let total = 0;
  for (const r of rows) {
    const n = Number(r.n);
    let b = buckets[buckets.length - 1];
    if (!b || b.hour.getTime() !== Number(r.hour_ms)) {
      b = { hour: new Date(Number(r.hour_ms)), counts: [], total: 0 };
      buckets.push(b);
    }
    b.counts.push({ code: r.code, count: n });
    b.total += n;
    totals.set(r.code, (totals.get(r.code) ?? 0) + n);
    total += n;
  }
  return { buckets, totals: [...totals].sort(([a], [b]) => (a < b ? -1 : 1)).map(([code, count]) => ({ code, count })), total };
}

const SELECT = `select (extract(epoch from hour) * 1000)::float8 as hour_ms, code, sum(count)::float8 as n`;
const GROUP = `group by hour, code order by hour, code`;

/**
 * Reads the verification counts src/verify/analytics.ts writes. They lag by
 * up to KEYWARD_USAGE_FLUSH_MS (each replica writes its own counts).
 */
export class UsageReports {
  constructor(private readonly orm: MikroORM) {}

  async keyUsage(p: Principal, keyId: string, range: TimeRange): Promise<UsageReport> {
    p.requireScope('api_keys:read');
    requireId('key_id', keyId);
    const { from, to } = checkRange(range);
    const em = this.orm.em.fork() as SqlEntityManager;
    const { key } = await findVisibleKey(em, p, keyId, { field: 'key_id' });
    const rows = await em.execute<UsageRow[]>(`${SELECT} from key_usage where workspace_id = ? and key_id = ? and hour >= ? and hour < ? ${GROUP}`, [
      key.workspaceId,
      keyId,
      from,
      to,
    ]);
    return report(rows);
  }

  /** Every verification counted in the workspace, unknown keys included (as `not_found`). */
  async workspaceUsage(p: Principal, workspaceId: string, range: TimeRange): Promise<UsageReport> {
    p.requireScope('api_keys:read');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    const { from, to } = checkRange(range);
    const em = this.orm.em.fork() as SqlEntityManager;
    await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
    const rows = await em.execute<UsageRow[]>(`${SELECT} from workspace_usage where workspace_id = ? and hour >= ? and hour < ? ${GROUP}`, [
      workspaceId,
      from,
      to,
    ]);
    return report(rows);
  }
}
