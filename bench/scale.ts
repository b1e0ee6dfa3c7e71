// `npm run bench:scale`: what Keyward's calls cost once the data is large.
//
// Loads, straight into a fresh PostgreSQL database (DATABASE_URL), a
// workspace of 1M keys across 1,000 customers, 10M hourly usage rows and 1M
// audit events, plus a workspace of 100k keys to delete; then restarts the
// server on it and reports, each against the same call on a workspace of
// 10,000 keys in the same database (the ratio says what does not stay flat):
// ListKeys (first and 100th page, by customer), GetKey, GetWorkspaceUsage over
// 30 days, ListAuditEvents filtered; start-up time and memory with the
// membership filter and a warm verify cache; and DeleteWorkspace of the 100k
// keys, with what a second replica's VerifyKey sees meanwhile.
//
// Options (bench/options.ts): --keys N (1000000) --customers N (1000)
//   --usage-rows N (10000000) --audit-events N (1000000) --delete-keys N (100000)
//   --samples N (30: calls timed per row)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { AuditService } from '../gen/keyward/v1/audit_service_pb.js';
import { KeyService, VerifyCode } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { UsageService } from '../gen/keyward/v1/usage_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { quantile } from './lib.js';
import { ROOT, SCALE, progress } from './options.js';
import { cleanup, makeTmpDir, stopServer } from './processes.js';
import { freshDatabase, startKeyward, type Keyward } from './setup.js';

const { keys: KEYS, customers: CUSTOMERS, usageRows: USAGE_ROWS, auditEvents: AUDIT_EVENTS, deleteKeys: DELETE_KEYS, samples: SAMPLES } = SCALE;
/** The workspace every call is compared with: the same shape at a hundredth of the keys (10 customers, so each customer's page is as full). */
const SMALL_KEYS = 10_000;
const SMALL_CUSTOMERS = 10;
const HOUR_MS = 3_600_000;

interface Clients {
  keys: Client<typeof KeyService>;
  workspaces: Client<typeof WorkspaceService>;
  scopes: Client<typeof ScopeService>;
  usage: Client<typeof UsageService>;
  audit: Client<typeof AuditService>;
}

function clientsOf(kw: Keyward): Clients {
  const auth: Interceptor = (next) => (req) => {
    req.header.set('authorization', `Bearer ${kw.adminToken}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${kw.port}`, interceptors: [auth] });
  return {
    keys: createClient(KeyService, transport),
    workspaces: createClient(WorkspaceService, transport),
    scopes: createClient(ScopeService, transport),
    usage: createClient(UsageService, transport),
    audit: createClient(AuditService, transport),
  };
}

/** Milliseconds of `call`, run `n` times one after another (after 5 untimed calls, which warm the code up): p50 and p95. */
async function timed(n: number, call: (i: number) => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  for (let i = 1; i <= 5; i++) await call(-i);
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await call(i);
    t.push(performance.now() - start);
  }
  t.sort((a, b) => a - b);
  return { p50: quantile(t, 0.5), p95: quantile(t, 0.95) };
}

async function sql(db: pg.Client, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  return db.query(text, values);
}

/** Keys (no grants) with secrets `scale-<tag>-<i>` (verifiable as imported keys), spread over `customers` customers. */
async function loadKeys(db: pg.Client, workspaceId: string, tag: string, n: number, customers = CUSTOMERS): Promise<void> {
  const chunk = 200_000;
  for (let from = 0; from < n; from += chunk) {
    const to = Math.min(n, from + chunk) - 1;
    await sql(
      db,
      `with k as (
         select i, gen_random_uuid() as id from generate_series($2::int, $3::int) as i
       ), ins as (
         insert into api_keys (id, workspace_id, customer_id, name, description, enabled, masked_key, start, metadata, expire_time,
                               last_used_time, revoke_time, create_time, update_time, rate_limits, remaining_uses, refill_amount,
                               refill_interval, refill_day, last_refill_time, version)
         select id, $1, 'cus_' || (i % $5::int), 'key ' || i, '', true, '****', '', '{}', null, null, null, now(), now(), '[]', null, null, null, null, null, 1
           from k
       )
       insert into api_key_secrets (hash, api_key_id, expire_time, create_time)
       select encode(sha256(convert_to('scale-' || $4::text || '-' || i, 'UTF8')), 'hex'), id, null, now() from k`,
      [workspaceId, from, to, tag, customers],
    );
    progress(`  ${tag}: ${to + 1} of ${n} keys`);
  }
}

/** USAGE_ROWS hourly rows over the workspace's first 100k keys, back over 90 days, and AUDIT_EVENTS events. */
async function loadHistory(db: pg.Client, workspaceId: string): Promise<void> {
  const keysUsed = Math.min(100_000, KEYS);
  const perKey = Math.ceil(USAGE_ROWS / keysUsed);
  const stepHours = Math.max(1, Math.floor((90 * 24) / perKey));
  const chunk = 10;
  for (let h = 0; h < perKey; h += chunk) {
    await sql(
      db,
      `insert into key_usage (workspace_id, key_id, hour, code, count)
       select $1, k.id, date_trunc('hour', now()) - make_interval(hours => h * $4::int), 'valid', 1 + (h % 7)
         from (select id from api_keys where workspace_id = $1 order by id limit $5::int) as k,
              generate_series($2::int, $3::int) as h`,
      [workspaceId, h, Math.min(perKey, h + chunk) - 1, stepHours, keysUsed],
    );
    progress(`  usage: ${Math.min(perKey, h + chunk) * keysUsed} of ${perKey * keysUsed} rows`);
  }
  await rollUpWorkspace(db, workspaceId);
  const actions = ['key.create', 'key.update', 'key.rotate', 'key.revoke'];
  const chunkA = 250_000;
  for (let from = 0; from < AUDIT_EVENTS; from += chunkA) {
    const to = Math.min(AUDIT_EVENTS, from + chunkA) - 1;
    await sql(
      db,
      `insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, details, request_id, count, aggregate_key)
       select gen_random_uuid(), now() - make_interval(secs => i * 7.0), 'sdk_scale', ($4::text[])[1 + i % 4], 'key', gen_random_uuid()::text, $1, '{}', null, 1, null
         from generate_series($2::int, $3::int) as i`,
      [workspaceId, from, to, actions],
    );
    progress(`  audit: ${to + 1} of ${AUDIT_EVENTS} events`);
  }
}

/** The workspace's counts, as src/verify/analytics.ts writes them beside each key's. */
async function rollUpWorkspace(db: pg.Client, workspaceId: string): Promise<void> {
  await sql(
    db,
    `insert into workspace_usage (workspace_id, hour, code, count)
     select workspace_id, hour, code, sum(count) from key_usage where workspace_id = $1 group by workspace_id, hour, code`,
    [workspaceId],
  );
}

/** The small workspace: SMALL_KEYS keys, 100 hours of usage of its first 100, and 1,000 audit events. */
async function loadSmall(db: pg.Client, workspaceId: string): Promise<void> {
  await loadKeys(db, workspaceId, 'small', SMALL_KEYS, SMALL_CUSTOMERS);
  await sql(
    db,
    `insert into key_usage (workspace_id, key_id, hour, code, count)
     select $1, k.id, date_trunc('hour', now()) - make_interval(hours => h), 'valid', 1
       from (select id from api_keys where workspace_id = $1 limit 100) as k, generate_series(0, 99) as h`,
    [workspaceId],
  );
  await rollUpWorkspace(db, workspaceId);
  await sql(
    db,
    `insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, details, request_id, count, aggregate_key)
     select gen_random_uuid(), now() - make_interval(secs => i), 'sdk_scale', 'key.revoke', 'key', gen_random_uuid()::text, $1, '{}', null, 1, null
       from generate_series(1, 1000) as i`,
    [workspaceId],
  );
}

async function metric(kw: Keyward, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${kw.port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Resident memory of process `pid`, MB. */
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function main(): Promise<void> {
  if (!process.env.DATABASE_URL) {
    process.stderr.write('npm run bench:scale needs DATABASE_URL (PostgreSQL): the embedded database is not meant for this much data.\n');
    process.exit(2);
  }
  makeTmpDir();
  const started = Date.now();
  const dbInfo = await freshDatabase('scale');
  const url = dbInfo.env.DATABASE_URL!;
  let a = await startKeyward('keyward-a', 'scale', {}, { db: dbInfo, adminToken: '' });
  const adminToken = a.adminToken;
  let c = clientsOf(a);
  const newWs = async (name: string) => (await c.workspaces.createWorkspace({ workspace: { name, keyPrefix: '' } })).workspace!.id;
  const big = await newWs('scale');
  const small = await newWs('small');
  const doomed = await newWs('doomed');
  await stopServer(a);

  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const loadStart = Date.now();
  progress(`loading ${KEYS} keys, ${USAGE_ROWS} usage rows, ${AUDIT_EVENTS} audit events, ${DELETE_KEYS} keys to delete`);
  await loadKeys(db, big, 'big', KEYS);
  await loadHistory(db, big);
  await loadSmall(db, small);
  await loadKeys(db, doomed, 'doomed', DELETE_KEYS);
  await sql(db, 'vacuum analyze');
  const loadS = (Date.now() - loadStart) / 1000;
  const totalKeys = Number((await sql(db, 'select count(*)::int as n from api_key_secrets')).rows[0].n);
  progress(`loaded in ${loadS.toFixed(0)} s`);

  // Start-up on the loaded database: listening, then the membership filter built.
  const t0 = performance.now();
  a = await startKeyward('keyward-a', 'scale', {}, { db: dbInfo, adminToken });
  const listeningMs = performance.now() - t0;
  while ((await metric(a, 'keyward_verify_filter_keys')) < totalKeys) await new Promise((r) => setTimeout(r, 50));
  const filterReadyMs = performance.now() - t0;
  const filterBytes = await metric(a, 'keyward_verify_filter_bytes');
  const rssStart = rssMb(a.proc.pid!);
  const heapStart = (await metric(a, 'nodejs_heap_size_used_bytes')) / 1e6;
  c = clientsOf(a);

  const rows: { call: string; big: { p50: number; p95: number }; small: { p50: number; p95: number } }[] = [];
  const both = async (call: string, run: (ws: string, tag: 'big' | 'small') => (i: number) => Promise<unknown>) => {
    progress(call);
    rows.push({ call, big: await timed(SAMPLES, run(big, 'big')), small: await timed(SAMPLES, run(small, 'small')) });
  };
  await both('ListKeys, first page (100)', (ws) => () => c.keys.listKeys({ workspaceId: ws, pageSize: 100 }));
  const pageToken = async (ws: string, page: number, pageSize: number) => {
    let token = '';
    for (let i = 1; i < page; i++) {
      const r = await c.keys.listKeys({ workspaceId: ws, pageSize, pageToken: token });
      if (!r.nextPageToken) break;
      token = r.nextPageToken;
    }
    return token;
  };
  const bigToken = await pageToken(big, 100, 100);
  const smallToken = await pageToken(small, 100, 100);
  await both('ListKeys, 100th page', (ws, tag) => () => c.keys.listKeys({ workspaceId: ws, pageSize: 100, pageToken: tag === 'big' ? bigToken : smallToken }));
  await both('ListKeys by customer id', (ws) => (i) => c.keys.listKeys({ workspaceId: ws, customerId: `cus_${Math.abs(i) % SMALL_CUSTOMERS}`, pageSize: 100 }));
  const someIds = async (ws: string) =>
    (await c.keys.listKeys({ workspaceId: ws, pageSize: 100, pageToken: ws === big ? bigToken : '' })).keys.map((k) => k.id);
  const ids = { big: await someIds(big), small: await someIds(small) };
  await both('GetKey', (_, tag) => (i) => c.keys.getKey({ id: ids[tag][Math.abs(i) % ids[tag].length]! }));
  const monthAgo = timestampFromMs(Date.now() - 30 * 24 * HOUR_MS);
  await both('GetWorkspaceUsage, 30 days', (ws) => () => c.usage.getWorkspaceUsage({ workspaceId: ws, startTime: monthAgo }));
  await both('ListAuditEvents, by workspace and action', (ws) => () => c.audit.listAuditEvents({ workspaceId: ws, action: 'key.revoke', pageSize: 100 }));

  // What GetWorkspaceUsage read before workspace_usage (migration 0010): every key's hourly rows of the month.
  const oldUsage = await timed(5, () =>
    sql(
      db,
      `select hour, code, sum(count) from key_usage where workspace_id = $1 and hour >= now() - interval '30 days' group by hour, code order by hour, code`,
      [big],
    ),
  );

  // Memory with a warm verify cache: 100,000 distinct keys verified.
  const warm = Math.min(100_000, KEYS);
  for (let i = 0; i < warm; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, warm - i) }, (_, j) => c.keys.verifyKey({ key: `scale-big-${i + j}` })));
  }
  const rssWarm = rssMb(a.proc.pid!);
  const heapWarm = (await metric(a, 'nodejs_heap_size_used_bytes')) / 1e6;

  // DeleteWorkspace of DELETE_KEYS keys while replica B verifies a key of it and one of another workspace.
  const b = await startKeyward('keyward-b', 'scale', {}, { db: dbInfo, adminToken });
  const cb = clientsOf(b);
  const doomedKey = 'scale-doomed-1';
  const otherKey = 'scale-big-1';
  for (const k of [doomedKey, otherKey]) {
    const r = await cb.keys.verifyKey({ key: k });
    if (r.code !== VerifyCode.VALID) throw new Error(`${k} does not verify on B before the delete: ${VerifyCode[r.code]}`);
  }
  const during: number[] = [];
  let stop = false;
  let doomedValidAfter = 0;
  let deleteReturned = 0;
  const watcher = (async () => {
    while (!stop) {
      const s = performance.now();
      const [rd] = await Promise.all([cb.keys.verifyKey({ key: doomedKey }), cb.keys.verifyKey({ key: otherKey })]);
      during.push(performance.now() - s);
      if (deleteReturned && rd.code === VerifyCode.VALID) doomedValidAfter++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const d0 = performance.now();
  await c.workspaces.deleteWorkspace({ id: doomed });
  const deleteMs = performance.now() - d0;
  deleteReturned = performance.now();
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await watcher;
  const unrevoked = Number((await sql(db, 'select count(*)::int as n from api_keys where workspace_id = $1 and revoke_time is null', [doomed])).rows[0].n);
  during.sort((x, y) => x - y);

  await stopServer(b);
  await stopServer(a);
  await db.end();

  const fmt = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1));
  const out: string[] = [];
  out.push(`Keyward scale run: ${new Date(started).toISOString()}, node ${process.version}, ${dbInfo.description}`);
  out.push(
    `data: ${KEYS.toLocaleString('en-US')} keys over ${CUSTOMERS} customers, ${USAGE_ROWS.toLocaleString('en-US')} usage rows, ${AUDIT_EVENTS.toLocaleString('en-US')} audit events; loaded in ${loadS.toFixed(0)} s`,
  );
  out.push('');
  out.push('| call | p50 ms at scale | p95 ms | p50 ms, 10,000-key workspace | x small |');
  out.push('|------|----------------:|-------:|--------------------------:|--------:|');
  for (const r of rows) out.push(`| ${r.call} | ${fmt(r.big.p50)} | ${fmt(r.big.p95)} | ${fmt(r.small.p50)} | ${(r.big.p50 / r.small.p50).toFixed(2)}x |`);
  out.push('');
  out.push(`GetWorkspaceUsage's query before migration 0010 (summing key_usage over 30 days): p50 ${fmt(oldUsage.p50)} ms`);
  out.push(
    `start-up with ${totalKeys.toLocaleString('en-US')} secrets: listening after ${(listeningMs / 1000).toFixed(1)} s, membership filter built after ${(filterReadyMs / 1000).toFixed(1)} s`,
  );
  out.push(
    `memory: filter ${(filterBytes / 1e6).toFixed(1)} MB (${(filterBytes / totalKeys).toFixed(2)} bytes a key); process RSS ${rssStart.toFixed(0)} MB (heap used ${heapStart.toFixed(0)} MB) after start, ${rssWarm.toFixed(0)} MB (heap ${heapWarm.toFixed(0)} MB) with ${warm.toLocaleString('en-US')} keys in the verify cache`,
  );
  out.push(
    `DeleteWorkspace of ${DELETE_KEYS.toLocaleString('en-US')} keys: ${(deleteMs / 1000).toFixed(2)} s; replica B meanwhile: ${during.length} verify pairs, p50 ${fmt(quantile(during, 0.5))} ms, p99 ${fmt(quantile(during, 0.99))} ms, max ${fmt(during[during.length - 1] ?? 0)} ms; the deleted workspace's key VALID on B after the call returned: ${doomedValidAfter} times; keys left unrevoked: ${unrevoked}`,
  );
  const text = out.join('\n');
  process.stdout.write(`\n${text}\n`);
  writeFileSync(path.join(ROOT, 'bench/results/scale-latest.md'), `${text}\n`);
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`scale run failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
