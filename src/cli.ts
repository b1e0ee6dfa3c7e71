import { parseArgs } from 'node:util';
import { resealSecrets } from './domain/reseal.js';
import { SecretBox } from './credentials/secret-box.js';
import { loadConfig, type Config } from './config.js';
import { backupEmbedded, backupPostgres, restoreEmbedded } from './db/backup.js';
import { openDatabase, type Database } from './db/database.js';
import { ChangeBus } from './domain/changes.js';
import { DomainError } from './domain/errors.js';
import { SdkKeys } from './domain/sdk-keys.js';
import { CLI_PRINCIPAL } from './domain/principal.js';
import { SigningKeys } from './tokens/signing-keys.js';
import { createLogger, errorFields } from './log.js';
import { startServer } from './server.js';
import { isWorker, runPrimary } from './workers.js';

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
  secrets reseal                         seal every stored secret under KEYWARD_SECRETS_KEY (after
                                         a rotation, the old key in KEYWARD_SECRETS_KEY_PREVIOUS)
  backup FILE                            write a consistent backup, also while a server runs
                                         (embedded database; with DATABASE_URL, runs pg_dump)
  restore FILE [--force]                 restore a backup of the embedded database into an empty
                                         KEYWARD_DATA_DIR no server runs on (--force replaces one)

Scopes: * workspace:read workspace:write workspace_scopes:read workspace_scopes:write
        api_keys:read api_keys:write api_keys:verify audit:read sdk_keys:write

Environment: PORT, HOST, DATABASE_URL, KEYWARD_DATA_DIR, KEYWARD_LOG_LEVEL, KEYWARD_TOKEN_TTL_SECONDS (all of them: docs/configuration.md).`;

async function withDatabase<T>(config: Config, fn: (sdkKeys: SdkKeys, signingKeys: SigningKeys, db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, joinRunning: true });
  try {
    const changes = new ChangeBus(db.shared);
    return await fn(
      new SdkKeys(db.orm, changes),
      new SigningKeys(db.orm, changes, { tokenTtlMs: config.tokenTtlSeconds * 1000, secrets: secretBoxOf(config) }),
      db,
    );
  } finally {
    await db.close();
  }
}

async function serve(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && !isWorker()) return runPrimary(config, log);
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

const secretBoxOf = (config: Config) => new SecretBox(config.secretsKey, config.previousSecretsKeys);

async function secrets(config: Config, args: string[]): Promise<void> {
  if (args.length !== 1 || args[0] !== 'reseal') throw new UsageError(`unknown secrets subcommand or arguments: ${args.join(' ') || '(none)'}`);
  const counts = await withDatabase(config, (_sdk, _signing, db) => resealSecrets(db.orm, secretBoxOf(config)));
  for (const c of counts) process.stdout.write(`${c.table}.${c.column}: ${c.resealed} resealed, ${c.rows - c.resealed} already under the current key\n`);
}

async function backup(config: Config, args: string[]): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError('backup needs one FILE');
  const file = positionals[0]!;
  if (config.databaseUrl) {
    await backupPostgres(config.databaseUrl, file);
    process.stdout.write(`backup written to ${file} (pg_dump custom format; restore with pg_restore)\n`);
    return;
  }
  const s = await backupEmbedded(config.dataDir, file);
  process.stdout.write(`backup written to ${file}: ${s.tables} tables, ${s.rows} rows, schema ${s.schema}\n`);
}

async function restore(config: Config, args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { force: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError('restore needs one FILE');
  if (config.databaseUrl) {
    throw new Error('keyward restore is for the embedded database; with DATABASE_URL, restore a pg_dump backup with pg_restore (docs/operations.md#backups)');
  }
  const s = await restoreEmbedded(config.dataDir, positionals[0]!, values.force ?? false);
  process.stdout.write(`restored ${s.tables} tables, ${s.rows} rows into ${config.dataDir}\n`);
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
    case 'secrets':
      return secrets(config, args);
    case 'backup':
      return backup(config, args);
    case 'restore':
      return restore(config, args);
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
