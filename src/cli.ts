import { parseArgs } from 'node:util';
import { SecretBox } from './credentials/secret-box.js';
import { loadConfig, type Config } from './config.js';
import { openDatabase } from './db/database.js';
import { ChangeBus } from './domain/changes.js';
import { DomainError } from './domain/errors.js';
import { SdkKeys } from './domain/sdk-keys.js';
import { CLI_PRINCIPAL } from './domain/principal.js';
import { SigningKeys } from './tokens/signing-keys.js';
import { createLogger, errorFields } from './log.js';
import { startServer } from './server.js';

const USAGE = `Usage: keyward <command>

Commands:
  serve                                  start the server (default)
  migrate                                apply database migrations and exit
  sdk-key create --name N --scope S... [--workspace ID...]
                                         issue an SDK key; the token is printed last, alone
  sdk-key list                           list SDK keys (never their secrets)
  sdk-key revoke ID                      revoke an SDK key
  signing-key rotate                     make a new token signing key active; the retired
                                         one stays in the JWKS until its tokens have expired

Scopes: * workspace:read workspace:write workspace_scopes:read workspace_scopes:write
        api_keys:read api_keys:write api_keys:verify audit:read sdk_keys:write

Environment: PORT, HOST, DATABASE_URL, KEYWARD_DATA_DIR, KEYWARD_LOG_LEVEL, KEYWARD_TOKEN_TTL_SECONDS (all of them: docs/configuration.md).`;

async function withDatabase<T>(config: Config, fn: (sdkKeys: SdkKeys, signingKeys: SigningKeys) => Promise<T>): Promise<T> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, joinRunning: true });
  try {
    const changes = new ChangeBus(db.shared);
    return await fn(
      new SdkKeys(db.orm, changes),
      new SigningKeys(db.orm, changes, { tokenTtlMs: config.tokenTtlSeconds * 1000, secrets: new SecretBox(config.secretsKey) }),
    );
  } finally {
    await db.close();
  }
}

async function serve(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    server.close().then(
      () => process.exit(0),
      (e) => {
        log.error('shutdown failed', errorFields(e, { stack: true }));
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function sdkKey(config: Config, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: {
        name: { type: 'string' },
        scope: { type: 'string', multiple: true },
        workspace: { type: 'string', multiple: true },
      },
    });
    const issued = await withDatabase(config, (k) => k.create({ name: values.name ?? '', scopes: values.scope ?? [], workspaceIds: values.workspace ?? [] }));
    process.stderr.write(`Created SDK key ${issued.sdkKey.id} (${issued.sdkKey.scopes.join(' ')}). The token is shown only now:\n`);
    process.stdout.write(`${issued.token}\n`);
  } else if (sub === 'list') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } } });
    const keys = await withDatabase(config, (k) => k.list());
    const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
    if (values.json) {
      const rows = keys.map((k) => ({
        id: k.id,
        name: k.name,
        scopes: k.scopes,
        workspace_ids: k.workspaceIds,
        create_time: iso(k.createTime),
        last_used_time: iso(k.lastUsedTime),
        revoke_time: iso(k.revokeTime),
      }));
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    const day = (d: Date | null | undefined) => (d ? d.toISOString().slice(0, 16).replace('T', ' ') : '-');
    process.stdout.write(
      table(
        ['ID', 'NAME', 'SCOPES', 'WORKSPACES', 'CREATED', 'LAST USED', 'STATE'],
        keys.map((k) => [
          k.id,
          k.name,
          k.scopes.join(' '),
          k.workspaceIds.length ? k.workspaceIds.join(',') : 'all',
          day(k.createTime),
          day(k.lastUsedTime),
          k.revokeTime ? `revoked ${day(k.revokeTime)}` : 'active',
        ]),
      ),
    );
  } else if (sub === 'revoke' && rest.length === 1) {
    const k = await withDatabase(config, (sdk) => sdk.revoke(rest[0]!));
    process.stdout.write(`revoked ${k.id}\n`);
  } else {
    throw new UsageError(sub === undefined ? 'sdk-key needs a subcommand' : `unknown sdk-key subcommand or arguments: ${[sub, ...rest].join(' ')}`);
  }
}

/** A command line that means nothing: says why, then prints the usage. */
class UsageError extends Error {}

/** Rows as aligned columns under a header, for people (`--json` is for scripts). */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`;
  return [header, ...rows].map(line).join('');
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...args] = argv;
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate':
      await withDatabase(config, async () => {});
      process.stdout.write('migrations applied\n');
      return;
    case 'sdk-key':
      return sdkKey(config, args);
    case 'signing-key': {
      if (args.length !== 1 || args[0] !== 'rotate') throw new UsageError(`unknown signing-key subcommand or arguments: ${args.join(' ') || '(none)'}`);
      const r = await withDatabase(config, (_sdk, signing) => signing.rotate(CLI_PRINCIPAL));
      process.stdout.write(`active signing key ${r.id}${r.retired.length ? `; retired ${r.retired.join(', ')}` : ''}\n`);
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError || (e as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) {
    const why = (e as Error).message;
    process.stderr.write(`${why ? `keyward: ${why}\n\n` : ''}${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`keyward: ${e instanceof DomainError ? e.message : ((e as Error)?.message ?? String(e))}\n`);
  process.exit(1);
});
