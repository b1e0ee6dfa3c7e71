import { spawnSync } from 'node:child_process';

/**
 * Makes sure Debian packages are installed, with apt-get when `present()` says
 * they are not (tests run as root). Bounded in time: a slow or unreachable
 * mirror yields a reason to skip, never a hung run. Returns undefined when
 * present, else why not.
 */
export function ensureDebianPackages(packages: string[], present: () => boolean): string | undefined {
  if (present()) return undefined;
  const run = (args: string[], timeoutMs: number) =>
    spawnSync('apt-get', args, {
      encoding: 'utf8',
      timeout: timeoutMs,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  // Another apt-get (a parallel test file, a person) may hold the lock a while.
  const install = () => run(['-o', 'DPkg::Lock::Timeout=120', 'install', '-y', '--no-install-recommends', ...packages], 240_000);
  let r = install();
  if (r.status !== 0 && !r.error) {
    // The package lists may be missing or stale on a fresh machine.
    run(['-o', 'DPkg::Lock::Timeout=120', 'update'], 180_000);
    r = install();
  }
  if (present()) return undefined;
  const detail = r.error ? r.error.message : `${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
  return `could not install ${packages.join(' ')} with apt-get (${detail || `exit ${r.status}`})`;
}

/** Whether a command exists on PATH (or at that path). */
export function hasCommand(cmd: string, args = ['--version']): boolean {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return !r.error && r.status === 0;
}

/** Says loudly, in the test output, why a suite is skipped. */
export function announceSkip(suite: string, reason: string): void {
  process.stderr.write(`\n*** SKIPPING ${suite}: ${reason} ***\n\n`);
}
