// The command line of `npm run bench` (described at the top of bench/run.ts)
// and the constants every part of the runner shares.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RUN_TS = path.join(ROOT, 'bin/run-ts.js');

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '8' },
    streams: { type: 'string', default: '32' },
    loadgen: { type: 'string', default: 'auto' },
    'cold-keys': { type: 'string', default: '50000' },
    'unknown-keys': { type: 'string', default: '100000' },
    'no-install': { type: 'boolean', default: false },
    'wait-quiet': { type: 'string', default: '0' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    // The scale run's (bench/scale.ts).
    keys: { type: 'string', default: '1000000' },
    customers: { type: 'string', default: '1000' },
    'usage-rows': { type: 'string', default: '10000000' },
    'audit-events': { type: 'string', default: '1000000' },
    'delete-keys': { type: 'string', default: '100000' },
    samples: { type: 'string', default: '30' },
  },
});
/** The scale run's sizes (bench/scale.ts). */
export const SCALE = {
  keys: Number(argv.keys),
  customers: Number(argv.customers),
  usageRows: Number(argv['usage-rows']),
  auditEvents: Number(argv['audit-events']),
  deleteKeys: Number(argv['delete-keys']),
  samples: Number(argv.samples),
};
export const DURATION_S = Number(argv.duration);
export const WARMUP_S = Number(argv.warmup);
export const CONNS = Number(argv.connections);
export const STREAMS = Number(argv.streams);
export const COLD_KEYS = Number(argv['cold-keys']);
export const UNKNOWN_KEYS = Number(argv['unknown-keys']);
export const WAIT_QUIET_S = Number(argv['wait-quiet']);
export const NO_INSTALL = argv['no-install'];
export const LOADGEN_CHOICE = argv.loadgen as 'auto' | 'h2load' | 'node';
export const SERVER_NODE_ARGS = argv['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(argv['cpu-prof'])}`] : [];

/** The rows to measure (--only), or null for all. */
export const ONLY = argv.only ? new Set(argv.only.split(',')) : null;
// The paced rows run at half of verify-hit-grpc's peak: they need that row.
if (ONLY?.has('verify-hit-grpc-half-peak') || ONLY?.has('bare-http2-same-rate')) ONLY.add('verify-hit-grpc');
/** Whether any of these rows is to be measured (a server none of whose rows is, is not started). */
export const wanted = (...ids: string[]) => ONLY === null || ids.some((id) => ONLY.has(id));

export const progress = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
