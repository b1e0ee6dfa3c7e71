// vitest global setup: gives every test process a place to record issued
// secrets and observed texts (test/support/hygiene.ts) and, after the whole
// suite, scans every recorded log line, error message and database dump for
// any issued API key or SDK key plaintext. One hit fails the run.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Length of the pieces of a secret searched for: long enough to be unique, short enough to catch a partial leak. */
const WINDOW = 16;
const RUN_RE = new RegExp(`[0-9A-Za-z]{${WINDOW},}`, 'g');

/** The random part of an issued plaintext: an API key's body and checksum, an SDK key's secret. */
function secretCore(plaintext: string): string {
  return plaintext.slice(plaintext.lastIndexOf('_') + 1);
}

interface Leak {
  where: string;
  /** The first characters of the leaked secret, to find it without printing it. */
  secretStart: string;
}

/** Every place a text contains WINDOW or more consecutive characters of a secret. */
export function findLeaks(secrets: Iterable<string>, texts: Iterable<{ where: string; text: string }>): Leak[] {
  const windows = new Map<string, string>();
  for (const s of secrets) {
    const core = secretCore(s);
    for (let i = 0; i + WINDOW <= core.length; i++) windows.set(core.slice(i, i + WINDOW), core);
  }
  const leaks: Leak[] = [];
  for (const { where, text } of texts) {
    for (const m of text.matchAll(RUN_RE)) {
      const run = m[0];
      for (let i = 0; i + WINDOW <= run.length; i++) {
        const core = windows.get(run.slice(i, i + WINDOW));
        if (core) {
          leaks.push({ where, secretStart: core.slice(0, 6) });
          break;
        }
      }
    }
  }
  return leaks;
}

function readSink(dir: string) {
  const secrets = new Set<string>();
  const texts: { where: string; text: string }[] = [];
  let bytes = 0;
  for (const f of readdirSync(dir)) {
    const content = readFileSync(path.join(dir, f), 'utf8');
    bytes += content.length;
    for (const line of content.split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as { secret?: string; where?: string; text?: string };
      if (r.secret !== undefined) secrets.add(r.secret);
      else texts.push({ where: r.where!, text: r.text! });
    }
  }
  return { secrets, texts, bytes };
}

export default function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keyward-hygiene-'));
  process.env.KEYWARD_TEST_SINK = dir;
  return () => {
    try {
      const { secrets, texts, bytes } = readSink(dir);
      const leaks = findLeaks(secrets, texts);
      const where = [...new Set(texts.map((t) => t.where.split(' ')[0]))].sort().join(', ');
      console.log(
        `secret hygiene: ${secrets.size} issued plaintexts searched in ${texts.length} recorded texts ` +
          `(${(bytes / 1e6).toFixed(1)} MB; ${where}): ${leaks.length} hits`,
      );
      if (secrets.size === 0) console.log('secret hygiene: no plaintext was recorded (a single test file without servers?)');
      if (leaks.length > 0) {
        const shown = leaks.slice(0, 20).map((l) => `  ${l.where}: ${l.secretStart}…`);
        // vitest reports an error thrown here but would still exit 0.
        process.exitCode = 1;
        console.error(`SECRET HYGIENE FAILED: ${leaks.length} hits`);
        throw new Error(`an issued secret appears in recorded output:\n${shown.join('\n')}`);
      }
    } finally {
      if (!process.env.KEYWARD_KEEP_HYGIENE_SINK) rmSync(dir, { recursive: true, force: true });
    }
  };
}
