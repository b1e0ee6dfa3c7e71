// The docs against the code, so they cannot drift: README.md and docs/*.md
// name only environment variables src/config.ts reads (and docs/configuration.md
// lists every one it reads, with the default it applies), show only `npm run`
// scripts package.json has and `keyward` commands src/cli.ts handles, and link
// only to files that exist (and to headings that exist, for links with a
// #fragment). No server, no database: it reads files.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

/** The documents checked, as paths from the repository's root. */
const DOCS = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const text = new Map(DOCS.map((d) => [d, read(d)]));

/** Markdown without its fenced code blocks (the lines are kept, blank, so line numbers still match). */
function prose(md: string): string {
  let fence: string | null = null;
  return md
    .split('\n')
    .map((line) => {
      const m = /^\s*(```+|~~~+)/.exec(line);
      if (fence === null && m) {
        fence = m[1]!;
        return '';
      }
      if (fence !== null) {
        if (line.trim().startsWith(fence)) fence = null;
        return '';
      }
      return line;
    })
    .join('\n');
}

/** `file:line` of `index` in `md`, for messages. */
const where = (file: string, md: string, index: number) => `${file}:${md.slice(0, index).split('\n').length}`;

// ---------------------------------------------------------------------------
// (1) Environment variables.

/** The variables src/config.ts reads: `env.X`, or a name passed as 'X' (to int(env, 'X', ...) and the like). */
function configVariables(): Set<string> {
  const src = read('src/config.ts');
  const names = new Set<string>();
  for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b/g)) names.add(m[1]!);
  for (const m of src.matchAll(/\benv\[\s*['"`]([A-Z][A-Z0-9_]*)['"`]\s*\]/g)) names.add(m[1]!);
  for (const m of src.matchAll(/['"`]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)['"`]/g)) {
    // 'PORT', 'KEYWARD_DB_POOL_SIZE': a whole string literal that is a variable's name.
    if (m[1]!.startsWith('KEYWARD_') || STANDARD.includes(m[1]!)) names.add(m[1]!);
  }
  return names;
}

/** The variables without a KEYWARD_ prefix that Keyward reads, and that the docs check for. */
const STANDARD = [
  'PORT',
  'HOST',
  'DATABASE_URL',
  'REDIS_URL',
  // OpenTelemetry's own (tracing, src/config.ts tracingOf).
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_TRACES_EXPORTER',
  'OTEL_SDK_DISABLED',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_BSP_SCHEDULE_DELAY',
];

/**
 * Variables the docs name that are not the server's configuration, each with a
 * file that must read it: they belong to a test, the benchmarks, the examples
 * or the gateway files in deploy/, not to src/config.ts.
 */
const NOT_SERVER_CONFIG: Record<string, string> = {
  KEYWARD_FUZZ_RUNS: 'test/e2e/fuzz.test.ts', // npm run fuzz
  KEYWARD_FUZZ_SEED: 'test/e2e/fuzz.test.ts',
  KEYWARD_SOAK_SECONDS: 'bench/soak.ts', // npm run soak
  KEYWARD_SOAK_CRASH_ROUNDS: 'bench/soak.ts', // npm run soak -- --crash
  KEYWARD_CRASH_SEED: 'test/e2e/crash-safety.test.ts', // and bench/soak.ts
  KEYWARD_SDK_KEY: 'examples/typescript/walkthrough.ts', // the examples' SDK key
  KEYWARD_HOST: 'deploy/gateways/nginx.conf', // the gateway files' settings
  KEYWARD_PORT: 'deploy/gateways/nginx.conf',
  KEYWARD_GATEWAY_SDK_KEY: 'deploy/gateways/nginx.conf',
};

const VARIABLE_RE = new RegExp(`(?<![A-Za-z0-9_])(KEYWARD_[A-Z0-9_]+|${STANDARD.join('|')})(?![A-Za-z0-9_])`, 'g');

/** Every variable each document names, with where. */
function documentedVariables(): { name: string; at: string }[] {
  const out: { name: string; at: string }[] = [];
  for (const [file, md] of text) {
    for (const m of md.matchAll(VARIABLE_RE)) out.push({ name: m[1]!, at: where(file, md, m.index!) });
  }
  return out;
}

describe('environment variables', () => {
  const known = configVariables();

  it('src/config.ts is read as expected (it reads PORT, DATABASE_URL and some KEYWARD_ variables)', () => {
    expect(known.has('PORT')).toBe(true);
    expect(known.has('DATABASE_URL')).toBe(true);
    expect([...known].filter((n) => n.startsWith('KEYWARD_')).length).toBeGreaterThan(10);
  });

  it('every variable README.md and docs/*.md name is one src/config.ts reads', () => {
    const names = documentedVariables();
    expect(names.length).toBeGreaterThan(0);
    const unknown = names.filter(({ name }) => {
      if (known.has(name)) return false;
      // A prefix such as KEYWARD_WEBHOOK_ (from `KEYWARD_WEBHOOK_*`) stands for the variables it starts.
      if (name.endsWith('_') && [...known].some((k) => k.startsWith(name))) return false;
      return !(name in NOT_SERVER_CONFIG);
    });
    expect(
      unknown.map(({ name, at }) => `${at}: ${name}`),
      'named in the docs, not read by src/config.ts',
    ).toEqual([]);
  });

  it('the variables the docs name that are not server configuration are read where they are used', () => {
    for (const [name, file] of Object.entries(NOT_SERVER_CONFIG)) {
      expect(known.has(name), `${name} is read by src/config.ts now: remove it from NOT_SERVER_CONFIG`).toBe(false);
      expect(read(file), `${file} does not mention ${name}`).toMatch(new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`));
    }
  });

  it('every variable src/config.ts reads has a row in the table of docs/configuration.md', () => {
    const table = new Set([...read('docs/configuration.md').matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((m) => m[1]!));
    expect(
      [...known].filter((n) => !table.has(n)),
      'read by src/config.ts, missing from docs/configuration.md',
    ).toEqual([]);
    expect(
      [...table].filter((n) => !known.has(n)),
      'in docs/configuration.md, not read by src/config.ts',
    ).toEqual([]);
  });

  it('the defaults in docs/configuration.md are the ones src/config.ts applies', () => {
    const src = read('src/config.ts');
    const defaults = new Map<string, string>();
    // int(env, 'X', 10_000, ...), rate(env, 'X', 2): a number, possibly a product (1024 * 1024).
    for (const m of src.matchAll(/\b(?:int|rate)\(env, '([A-Z][A-Z0-9_]*)', ([\d_ *]+)[,)]/g)) {
      defaults.set(m[1]!, String(m[2]!.split('*').reduce((a, f) => a * Number(f.trim().replace(/_/g, '')), 1)));
    }
    // env.X || 'text', env.X ?? 'text'
    for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*) (?:\|\||\?\?) '([^']+)'/g)) defaults.set(m[1]!, m[2]!);
    // env.X !== 'false' (on unless turned off), env.X === 'true' (off unless turned on)
    for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*) !== 'false'/g)) defaults.set(m[1]!, 'true');
    for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*) === 'true'/g)) defaults.set(m[1]!, 'false');
    expect(defaults.size).toBeGreaterThan(10);
    const rows = new Map(
      [...read('docs/configuration.md').matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*([^|]*?)\s*\|/gm)].map((m) => [m[1]!, m[2]!.replace(/`/g, '')]),
    );
    const wrong = [...defaults]
      .filter(([name, dflt]) => rows.has(name) && rows.get(name)!.replace(/,/g, '') !== dflt)
      .map(([name, dflt]) => `${name}: docs say ${rows.get(name)}, src/config.ts ${dflt}`);
    expect(wrong).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// (2) npm scripts.

describe('npm scripts', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;

  it('every `npm run <script>` (and `npm start`, `npm test`) in the docs is a script in package.json', () => {
    const seen: string[] = [];
    const missing: string[] = [];
    for (const [file, md] of text) {
      for (const m of md.matchAll(/\bnpm\s+(?:run(?:-script)?\s+([A-Za-z0-9:_.-]+)|(start|test)\b)/g)) {
        const name = (m[1] ?? m[2])!;
        seen.push(name);
        if (!(name in scripts)) missing.push(`${where(file, md, m.index!)}: npm run ${name}`);
      }
    }
    expect(seen).toContain('bench');
    expect(missing, 'not in package.json scripts').toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// (3) CLI commands.

describe('keyward commands', () => {
  const cli = read('src/cli.ts');
  /** The commands main() handles: its `case '...'` labels. */
  const commands = new Set([...cli.matchAll(/\bcase\s+'([^']+)'\s*:/g)].map((m) => m[1]!));
  /** The commands the usage text lists with a subcommand (`sdk-key create`), and those subcommands. */
  const usage = /Commands:\n([\s\S]*?)\n\n/.exec(cli)?.[1] ?? '';
  const subcommands = new Map<string, Set<string>>();
  for (const m of usage.matchAll(/^ {2}([a-z][\w-]*) ([a-z][\w-]*)/gm)) {
    if (!subcommands.has(m[1]!)) subcommands.set(m[1]!, new Set());
    subcommands.get(m[1]!)!.add(m[2]!);
  }

  it('src/cli.ts is read as expected', () => {
    expect(commands).toContain('serve');
    expect(subcommands.get('sdk-key')).toContain('create');
  });

  it('every `keyward <command>` / `npx keyward <command>` in the docs is one src/cli.ts handles', () => {
    const seen: string[] = [];
    const wrong: string[] = [];
    for (const [file, md] of text) {
      // `keyward` as a command word: at the start of a line or code span, or after npx; not in a URL, a
      // quoted string or a config (`upstream keyward {`, `http://keyward:8080`, `realm="keyward"`).
      for (const m of md.matchAll(/(?:(?<=^|[\s`])npx\s+|(?<=^\s*|`))keyward[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?/gm)) {
        const [command, sub] = [m[1]!, m[2]];
        const at = where(file, md, m.index!);
        seen.push(`${command}${sub ? ` ${sub}` : ''}`);
        if (!commands.has(command)) {
          wrong.push(`${at}: keyward ${command} (src/cli.ts has no case '${command}')`);
          continue;
        }
        const subs = subcommands.get(command);
        if (!subs) continue;
        if (sub === undefined || !subs.has(sub) || !cli.includes(`'${sub}'`)) {
          wrong.push(`${at}: keyward ${command} ${sub ?? '(no subcommand)'} (src/cli.ts handles ${[...subs].join(', ')})`);
        }
      }
    }
    expect(seen).toContain('serve');
    expect(seen).toContain('sdk-key create');
    expect(wrong).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// (4) Relative links.

/** GitHub's anchors for the headings of a Markdown file (not counting lines in code blocks). */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  const count = new Map<string, number>();
  for (const m of prose(md).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = count.get(base) ?? 0;
    count.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('relative links', () => {
  it('every relative link in README.md and docs/*.md points to a file that exists (and its #fragment to a heading)', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const [file, md] of text) {
      const body = prose(md);
      const targets = [
        ...[...body.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => ({ href: m[1]!, index: m.index! })),
        ...[...body.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => ({ href: m[1]!, index: m.index! })),
      ];
      for (const { href, index } of targets) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('//')) continue; // https:, mailto:, ...
        checked++;
        const at = where(file, md, index);
        const [p, fragment] = href.split('#', 2) as [string, string | undefined];
        const target = p === '' ? path.join(ROOT, file) : path.resolve(path.dirname(path.join(ROOT, file)), decodeURIComponent(p));
        if (!target.startsWith(ROOT + path.sep) && target !== ROOT) {
          broken.push(`${at}: ${href} leaves the repository`);
          continue;
        }
        if (!existsSync(target)) {
          broken.push(`${at}: ${href} (no ${path.relative(ROOT, target)})`);
          continue;
        }
        if (fragment && target.endsWith('.md') && statSync(target).isFile()) {
          if (!anchors(readFileSync(target, 'utf8')).has(fragment.toLowerCase())) {
            broken.push(`${at}: ${href} (no heading #${fragment} in ${path.relative(ROOT, target)})`);
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect(broken).toEqual([]);
  });

  it('README.md links to every document in docs/', () => {
    const readme = read('README.md');
    const unlinked = DOCS.filter((d) => d.startsWith('docs/') && !readme.includes(`](${d}`));
    expect(unlinked).toEqual([]);
  });
});
