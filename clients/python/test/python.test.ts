// The Python client (clients/python) against a real server: its unittest
// suite (management, verify, errors, paging, retries, token refresh, the
// example service, the README example); keyward.grpc's committed stubs
// against proto/ and over gRPC (Debian's python3-grpcio); and
// `pip install --no-build-isolation` of the package into a fresh directory,
// offline, then a verify from the installed copy.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announceSkip, ensureDebianPackages } from '../../../test/support/debian.js';
import { recordText } from '../../../test/support/hygiene.js';
import { startTestServer, type TestServer } from '../../../test/support/server.js';

const PACKAGE = path.resolve(import.meta.dirname, '..');

/**
 * A python3 (3.9 or later) that has what `needs` imports: KEYWARD_TEST_PYTHON if set (to try
 * another version, e.g. python3.9), else `python3` on PATH, then Debian's.
 */
function findPython(needs: string): string | undefined {
  const candidates = process.env.KEYWARD_TEST_PYTHON ? [process.env.KEYWARD_TEST_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const candidate of candidates) {
    const r = spawnSync(candidate, ['-c', `import sys; assert sys.version_info >= (3, 9); ${needs}`], { timeout: 30_000 });
    if (!r.error && r.status === 0) return candidate;
  }
  return undefined;
}

// The client itself needs nothing beyond the standard library; pip install
// needs pip and setuptools (and, for setuptools < 70.1, wheel) in the same interpreter.
const PYTHON = findPython('import json, urllib.request, threading, unittest');
const PIP_CHECK =
  // setuptools first: importing pip first trips setuptools' distutils check.
  'import importlib.util, setuptools; v = tuple(int(x) for x in setuptools.__version__.split(".")[:2]); ' +
  'assert v >= (61, 0) and importlib.util.find_spec("pip"); v >= (70, 1) or __import__("wheel")';
const pipMissing = PYTHON ? ensureDebianPackages(['python3-pip', 'python3-setuptools', 'python3-wheel'], () => !!findPython(PIP_CHECK)) : 'no python3';
const PIP_PYTHON = pipMissing ? undefined : findPython(PIP_CHECK);
// keyward.grpc needs grpcio and protobuf: Debian's python3-grpcio and python3-protobuf serve /usr/bin/python3.
const grpcMissing = ensureDebianPackages(
  ['protobuf-compiler', 'protobuf-compiler-grpc', 'libprotobuf-dev', 'python3-grpcio', 'python3-protobuf'],
  () =>
    existsSync('/usr/bin/protoc') &&
    existsSync('/usr/bin/grpc_python_plugin') &&
    existsSync('/usr/include/google/protobuf/timestamp.proto') &&
    spawnSync('/usr/bin/python3', ['-c', 'import grpc, google.protobuf'], { timeout: 30_000 }).status === 0,
);
const GRPC_PYTHON = grpcMissing ? undefined : findPython('import grpc, google.protobuf');
if (grpcMissing) announceSkip('the Python client gRPC stubs (keyward.grpc)', grpcMissing);
else if (!GRPC_PYTHON) announceSkip('the Python client gRPC stubs (keyward.grpc)', 'no python3 that imports grpc and google.protobuf');
if (!PYTHON) announceSkip('the Python client tests', 'no python3 >= 3.9 on PATH or at /usr/bin/python3');
else if (!PIP_PYTHON) announceSkip('the Python client install test', pipMissing ?? 'no python3 with pip, setuptools and wheel');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the server answers the Python client meanwhile). */
function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number, cwd = PACKAGE): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env }, timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      // What the Python side printed must hold no secret: the suite's hygiene scan checks it.
      recordText('python-client-output', stdout);
      recordText('python-client-output', stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!PYTHON)('clients/python', () => {
  let ts: TestServer;

  beforeAll(async () => {
    ts = await startTestServer({ KEYWARD_TOKEN_TTL_SECONDS: '3', KEYWARD_USAGE_FLUSH_MS: '200' });
  });

  afterAll(async () => {
    await ts?.close();
  });

  it('passes its unittest suite against the server', async () => {
    const r = await run(
      PYTHON!,
      ['-m', 'unittest', 'discover', '-s', 'tests', '-v'],
      { KEYWARD_URL: ts.baseUrl, KEYWARD_SDK_KEY: ts.adminToken, PYTHONPATH: PACKAGE },
      120_000,
    );
    if (r.code !== 0) console.error(`python -m unittest exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    expect(r.code).toBe(0);
    // Every test ran: none skipped (for want of KEYWARD_URL, or a token TTL too long to wait for),
    // but for keyward.grpc in an interpreter without grpcio (run below with one that has it).
    const skipped = r.stderr.split('\n').filter((l) => /\.\.\. skipped/.test(l));
    expect(skipped.filter((l) => !/^test_create_and_verify_over_grpc .* skipped 'keyward.grpc needs/.test(l))).toEqual([]);
    expect(r.stderr).toMatch(/\nOK( \(skipped=1\))?\s*$/);
  }, 150_000);

  it.skipIf(!GRPC_PYTHON)('keyward.grpc: the committed stubs match proto/ and call the server over gRPC', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'keyward-py-stubs-'));
    try {
      const gen = await run('sh', [path.join(PACKAGE, 'generate.sh'), out], {}, 60_000);
      expect(gen.code, gen.stderr).toBe(0);
      const fresh = readdirSync(path.join(out, 'keyward/v1')).sort();
      const committed = readdirSync(path.join(PACKAGE, 'keyward/v1')).filter((f) => f.endsWith('.py') && f !== '__init__.py').sort();
      expect(committed, 'run clients/python/generate.sh after changing proto/').toEqual(fresh);
      for (const f of fresh) {
        const same = readFileSync(path.join(out, 'keyward/v1', f), 'utf8') === readFileSync(path.join(PACKAGE, 'keyward/v1', f), 'utf8');
        expect(same, `clients/python/keyward/v1/${f} differs from proto/: run clients/python/generate.sh`).toBe(true);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const r = await run(
      GRPC_PYTHON!,
      ['-m', 'unittest', 'discover', '-s', 'tests', '-p', 'test_grpc.py', '-v'],
      { KEYWARD_URL: ts.baseUrl, KEYWARD_SDK_KEY: ts.adminToken, PYTHONPATH: PACKAGE },
      60_000,
    );
    if (r.code !== 0) console.error(`python -m unittest (gRPC) exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/\.\.\. skipped/);
    expect(r.stderr).toMatch(/Ran 1 test[\s\S]*\nOK\s*$/);
  }, 120_000);

  it.skipIf(!PIP_PYTHON)('installs with pip --no-build-isolation (offline) and verifies a key from the installed copy', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyward-py-install-'));
    try {
      // Built from a copy, so that setuptools' build/ and *.egg-info stay out of the working tree.
      const src = path.join(dir, 'src');
      cpSync(PACKAGE, src, { recursive: true, filter: (p) => !/(__pycache__|\.egg-info|[/\\]build)$/.test(p) });
      const target = path.join(dir, 'site');
      const install = await run(
        PIP_PYTHON!,
        ['-m', 'pip', 'install', '--no-build-isolation', '--no-index', '--no-deps', '--disable-pip-version-check', '--target', target, src],
        { PIP_NO_INPUT: '1' },
        120_000,
        dir,
      );
      if (install.code !== 0) console.error(`pip install exited ${install.code}:\n${install.stderr}\n${install.stdout}`);
      expect(install.code).toBe(0);

      const script = `
import os, keyward
from keyward import Keyward
assert os.path.dirname(keyward.__file__).startswith(os.environ["TARGET"]), keyward.__file__
assert os.path.exists(os.path.join(os.path.dirname(keyward.__file__), "py.typed"))
kw = Keyward(os.environ["KEYWARD_URL"], os.environ["KEYWARD_SDK_KEY"])
ws = kw.workspaces.create("installed-" + os.urandom(4).hex())
kw.scopes.create(ws["id"], "balance_transfers")
created = kw.keys.create(workspace_id=ws["id"], customer_id="cus_1", grants=["balance_transfers:read"])
ok = kw.keys.verify(created.secret, permissions=["balance_transfers:read"])
no = kw.keys.verify(created.secret, permissions=["balance_transfers:delete"])
print(keyward.__version__, ok.valid, ok.code, ok.customer_id, no.code)
`;
      // Run from an empty directory with only the install target on the path: not the source tree.
      const r = await run(PIP_PYTHON!, ['-c', script], { PYTHONPATH: target, TARGET: target, KEYWARD_URL: ts.baseUrl, KEYWARD_SDK_KEY: ts.adminToken }, 60_000, dir);
      if (r.code !== 0) console.error(r.stderr);
      expect(r.stdout.trim()).toBe('0.1.0 True VALID cus_1 INSUFFICIENT_PERMISSIONS');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
