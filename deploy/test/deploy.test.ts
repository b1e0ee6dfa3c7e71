// The deployment files in deploy/, tested as far as a machine without a
// container engine allows: the Dockerfile's final stage is laid out as the
// image has it (its COPY lines) and its CMD runs there as a plain process, with
// the environment the Dockerfile and the compose file set, until /readyz
// answers, the HEALTHCHECK passes and SIGTERM ends it within the grace; the
// compose and Kubernetes files parse, name only variables src/config.ts reads,
// probe /readyz and /healthz, and leave shutdown the time it needs.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { builtinModules } from 'node:module';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { recordProcessOutput } from '../../test/support/hygiene.js';
import { freePort } from '../../test/support/process.js';
import { redisAnswers, TEST_REDIS_URL, uniqueRedisPrefix } from '../../test/support/redis.js';
import { parseYaml, type YamlValue } from './yaml.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DEPLOY = path.join(ROOT, 'deploy');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

type Obj = { [key: string]: YamlValue };
const at = (root: unknown, ...keys: (string | number)[]): unknown =>
  keys.reduce<unknown>((n, k) => (n === null || typeof n !== 'object' ? undefined : (n as Obj)[k]), root);

// ---------------------------------------------------------------------------
// What the files say.

/** The variables src/config.ts reads (`env.X`, or a name passed as 'X'), and the standard ones Keyward also honours. */
function knownVariables(): Set<string> {
  const src = read('src/config.ts');
  const names = new Set<string>(['NODE_ENV', 'PORT', 'HOST', 'DATABASE_URL', 'REDIS_URL']);
  for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) names.add(m[1]!);
  for (const m of src.matchAll(/'([A-Z][A-Z0-9]*_[A-Z0-9_]+)'/g)) names.add(m[1]!);
  return names;
}

interface Dockerfile {
  /** The final stage's instructions, continuation lines joined. */
  final: { op: string; args: string }[];
  env: Record<string, string>;
  workdir: string;
  cmd: string[];
  healthcheck: string[];
}

function parseDockerfile(text: string): Dockerfile {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([A-Z]+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`not a Dockerfile instruction: ${l}`);
      return { op: m[1]!, args: m[2]! };
    });
  const lastFrom = instructions.map((i) => i.op).lastIndexOf('FROM');
  const final = instructions.slice(lastFrom + 1);
  const env: Record<string, string> = {};
  for (const i of final.filter((i) => i.op === 'ENV')) {
    for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  const one = (op: string) => {
    const found = final.filter((i) => i.op === op);
    expect(found, `one ${op} in the final stage`).toHaveLength(1);
    return found[0]!.args;
  };
  const healthcheck = /\bCMD\s+(\[.*\])$/.exec(one('HEALTHCHECK'));
  return {
    final,
    env,
    workdir: one('WORKDIR'),
    // Exec form (JSON), so SIGTERM reaches node itself, not a shell.
    cmd: JSON.parse(one('CMD')) as string[],
    healthcheck: JSON.parse(healthcheck![1]!) as string[],
  };
}

/** Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} with `values`; a required one without a value fails. */
function interpolate(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (_, name: string, kind?: string, rest?: string) => {
    if (values[name] !== undefined) return values[name];
    if (kind === '-') return rest!;
    throw new Error(`compose needs ${name}: ${rest ?? ''}`);
  });
}

const dockerfile = parseDockerfile(read('deploy/Dockerfile'));
const compose = parseYaml(read('deploy/docker-compose.yml'))[0] as Obj;
const kubernetes = readdirSync(path.join(DEPLOY, 'kubernetes'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseYaml(read(`deploy/kubernetes/${f}`)).map((doc) => ({ file: f, doc: doc as Obj })));
const deployment = kubernetes.find((k) => k.doc.kind === 'Deployment')!.doc;
const container = at(deployment, 'spec', 'template', 'spec', 'containers', 0) as Obj;
const graceMs = (env: Record<string, unknown>) => Number(env.KEYWARD_SHUTDOWN_GRACE_MS ?? 10_000);

describe('deploy/: what the files name', () => {
  const known = knownVariables();

  it('src/config.ts is read as expected (the list of known variables is not empty)', () => {
    expect(known).toContain('KEYWARD_SHUTDOWN_GRACE_MS');
    expect(known).toContain('KEYWARD_SECRETS_KEY');
    expect(known.size).toBeGreaterThan(20);
  });

  it('every variable the Dockerfile, compose and Kubernetes set for Keyward is one it reads', () => {
    const named = {
      Dockerfile: Object.keys(dockerfile.env),
      'docker-compose.yml': Object.keys(at(compose, 'services', 'keyward', 'environment') as Obj),
      'kubernetes/deployment.yaml': (container.env as Obj[]).map((e) => String(e.name)),
    };
    for (const [file, names] of Object.entries(named)) {
      expect(names.length, file).toBeGreaterThan(0);
      expect(
        names.filter((n) => !known.has(n)),
        `${file} names variables src/config.ts does not read`,
      ).toEqual([]);
    }
  });

  it('the Dockerfile: multi-stage, dev dependencies only in the build stage, a non-root user, HEALTHCHECK on /readyz, CMD serve', () => {
    const text = read('deploy/Dockerfile');
    expect(text.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^RUN node bin\/build-ui\.js --force$/m);
    const runs = dockerfile.final.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.includes('npm ci --omit=dev'))).toBe(true);
    const user = dockerfile.final.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/^(root|0)$/);
    expect(dockerfile.healthcheck.join(' ')).toContain('/readyz');
    expect(dockerfile.cmd).toEqual(['node', 'bin/keyward.js', 'serve']);
  });

  it('every package src/ imports is a runtime dependency (the image installs no dev dependencies)', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    const missing = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory()) walk(p);
        else if (/\.ts$/.test(e.name)) {
          const text = read(p);
          // Value imports only: `import type` is erased and needs nothing at run time.
          for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'".][^'"]*)['"]/gm)) {
            const spec = m[1]!;
            if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!pkg.dependencies[name]) missing.add(`${name} (${p})`);
          }
          for (const m of text.matchAll(/\bimport\(\s*['"]([^'".][^'"]*)['"]\s*\)/g)) {
            const spec = m[1]!;
            if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!pkg.dependencies[name]) missing.add(`${name} (${p})`);
          }
        }
      }
    };
    walk('src');
    walk('bin');
    expect([...missing]).toEqual([]);
  });

  it('docker-compose.yml: Keyward built from deploy/Dockerfile, with PostgreSQL and Redis, healthy on /readyz, stopped within its grace', () => {
    const services = compose.services as Obj;
    expect(Object.keys(services).sort()).toEqual(['keyward', 'postgres', 'redis']);
    const k = services.keyward as Obj;
    expect(at(k, 'build', 'dockerfile')).toBe('deploy/Dockerfile');
    expect(Object.keys(at(k, 'depends_on') as Obj).sort()).toEqual(['postgres', 'redis']);
    expect((at(k, 'healthcheck', 'test') as string[]).join(' ')).toContain('/readyz');
    const env = at(k, 'environment') as Obj;
    expect(String(env.DATABASE_URL)).toMatch(/@postgres:5432\//);
    expect(String(env.REDIS_URL)).toBe('redis://redis:6379');
    // Docker's stop_grace_period covers KEYWARD_SHUTDOWN_GRACE_MS and the flush after it.
    const stop = Number(/^(\d+)s$/.exec(String(k.stop_grace_period))![1]);
    expect(stop * 1000).toBeGreaterThanOrEqual(graceMs(env) + 3000);
  });

  it('Kubernetes: readiness on /readyz, liveness on /healthz, a preStop sleep and a termination grace that fits KEYWARD_SHUTDOWN_GRACE_MS', () => {
    expect(kubernetes.map((k) => k.doc.kind).sort()).toEqual(['Deployment', 'PodDisruptionBudget', 'Secret', 'Service']);
    expect(at(container, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
    expect(at(container, 'livenessProbe', 'httpGet', 'path')).toBe('/healthz');
    const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name, e.value]));
    const sleep = at(container, 'lifecycle', 'preStop', 'exec', 'command') as string[];
    expect(sleep[0]).toBe('sleep');
    const total = Number(at(deployment, 'spec', 'template', 'spec', 'terminationGracePeriodSeconds'));
    expect(total).toBeGreaterThanOrEqual(Number(sleep[1]) + graceMs(env) / 1000 + 3);
    // The Secret the Deployment reads has the keys it reads.
    const secret = kubernetes.find((k) => k.doc.kind === 'Secret')!.doc;
    const refs = (container.env as Obj[]).map((e) => at(e, 'valueFrom', 'secretKeyRef') as Obj | undefined).filter((r) => r !== undefined);
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) {
      expect(r.name).toBe(at(secret, 'metadata', 'name'));
      expect(Object.keys(secret.stringData as Obj)).toContain(r.key);
    }
    // The Service reaches the container's named port; the Deployment selects its own pods.
    const service = kubernetes.find((k) => k.doc.kind === 'Service')!.doc;
    expect(at(service, 'spec', 'ports', 0, 'targetPort')).toBe(at(container, 'ports', 0, 'name'));
    expect(at(deployment, 'spec', 'selector', 'matchLabels')).toEqual(at(deployment, 'spec', 'template', 'metadata', 'labels'));
    expect(at(service, 'spec', 'selector')).toEqual(at(deployment, 'spec', 'template', 'metadata', 'labels'));
  });
});

// ---------------------------------------------------------------------------
// The image's command, run as a plain process.

describe('deploy/Dockerfile: the final stage’s CMD as a plain process', () => {
  let dir: string;
  let db: TestDatabase;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyward-deploy-image-'));
    db = await createTestDatabase({ persistent: true });
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The image's WORKDIR as its COPY lines fill it: sources from the
   * repository, `--from=build` ones from this checkout's built console and
   * portal; node_modules stands in for `npm ci --omit=dev`.
   */
  function layOutImage(app: string): void {
    mkdirSync(app, { recursive: true });
    for (const i of dockerfile.final.filter((i) => i.op === 'COPY')) {
      const words = i.args.split(/\s+/);
      const fromBuild = words.includes('--from=build');
      const paths = words.filter((w) => !w.startsWith('--'));
      const dest = paths.pop()!;
      for (const s of paths) {
        // The build stage's WORKDIR is this checkout, with the UI built (test/support/build-ui.ts).
        const from = path.join(ROOT, fromBuild ? path.relative(dockerfile.workdir, s) : s);
        // As COPY does: a file into a destination ending in "/", a directory's contents into the destination.
        const isDir = statSync(from).isDirectory();
        cpSync(from, dest.endsWith('/') && !isDir ? path.join(app, dest, path.basename(s)) : path.join(app, dest), { recursive: true });
      }
    }
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
  }

  it('serves, turns ready on /readyz, passes its HEALTHCHECK, and exits 0 on SIGTERM within the grace', { timeout: 90_000 }, async () => {
    const app = path.join(dir, 'app');
    layOutImage(app);
    const port = await freePort();
    const composeEnv = at(compose, 'services', 'keyward', 'environment') as Obj;
    const secretsKey = randomBytes(32).toString('base64');
    const redis = await redisAnswers();
    // The image's environment (Dockerfile ENV, then compose's), with this machine's
    // database, Redis and port in place of the compose network's.
    const env: Record<string, string> = {
      PATH: process.env.PATH!,
      HOME: dir,
      ...dockerfile.env,
      ...Object.fromEntries(Object.entries(composeEnv).map(([k, v]) => [k, interpolate(String(v), { KEYWARD_SECRETS_KEY: secretsKey })])),
      PORT: String(port),
      HOST: '127.0.0.1',
      KEYWARD_DATA_DIR: path.join(dir, 'data'),
    };
    if (db.databaseUrl) env.DATABASE_URL = db.databaseUrl;
    else delete env.DATABASE_URL; // the embedded database, in KEYWARD_DATA_DIR
    if (redis) Object.assign(env, { REDIS_URL: TEST_REDIS_URL, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix('deploy') });
    else delete env.REDIS_URL;

    const [cmd, ...args] = dockerfile.cmd;
    const child = spawn(cmd!, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<{ code: number | null; at: number }>((r) =>
      child.once('exit', (code) => {
        recordProcessOutput(out, err, 'server-log');
        r({ code, at: Date.now() });
      }),
    );
    try {
      const url = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 75_000; // the embedded database starts slowly on a busy machine
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the server exited ${child.exitCode}: ${err}`);
        const ready = await fetch(`${url}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ready) break;
        if (Date.now() > deadline) throw new Error(`/readyz never answered 200: ${err}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // What the image serves from its own files: the console and the OpenAPI document (from proto/).
      expect((await fetch(`${url}/console/`)).status).toBe(200);
      expect((await fetch(`${url}/openapi.json`)).status).toBe(200);
      // On an empty database with compose's settings it prints the admin key, once, on stdout.
      expect(out).toMatch(/kws_\S+/);

      // The HEALTHCHECK, as Docker runs it: in the container's environment.
      const [hc, ...hcArgs] = dockerfile.healthcheck;
      const health = spawnSync(hc!, hcArgs, { cwd: app, env, encoding: 'utf8', timeout: 10_000 });
      expect(health.status, health.stderr).toBe(0);

      const sent = Date.now();
      child.kill('SIGTERM');
      const { code, at: end } = await exited;
      expect(code, err).toBe(0);
      expect(end - sent).toBeLessThan(graceMs(env) + 3000);
      expect(err).toContain('shutting down');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
