import type { MikroORM } from '@mikro-orm/postgresql';
import { SdkKey, Workspace } from '../db/entities.js';
import { formatSdkKey, hashSdkKeySecret, newSdkKeySecret } from '../credentials/sdk-key.js';
import { newId } from './ids.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { invalidArgument, notFound } from './errors.js';
import { ALL_SCOPES, CLI_PRINCIPAL, isSdkScope, SDK_SCOPES } from './principal.js';
import { checkLength, requireId } from './validate.js';

export interface SdkKeyInput {
  name: string;
  scopes: string[];
  workspaceIds: string[];
}

export interface IssuedSdkKey {
  sdkKey: SdkKey;
  /** The full token, `kws_{id}_{secret}`, shown once. */
  token: string;
}

/** SDK keys are the operator's: they are managed from the CLI, not over RPC. */
export class SdkKeys {
  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
  ) {}

  async create(input: SdkKeyInput): Promise<IssuedSdkKey> {
    const name = checkLength('name', input.name, 120, { required: true });
    if (input.scopes.length === 0) throw invalidArgument('scope', 'at least one is required');
    for (const s of input.scopes) {
      if (!isSdkScope(s)) throw invalidArgument('scope', `unknown scope ${JSON.stringify(s)}; use ${ALL_SCOPES} or ${SDK_SCOPES.join(', ')}`);
    }
    const em = this.orm.em.fork();
    for (const w of input.workspaceIds) {
      requireId('workspace', w);
      if (!(await em.findOne(Workspace, { id: w, deleteTime: null }))) throw notFound('workspace', w);
    }
    const secret = newSdkKeySecret();
    const sdkKey = em.create(SdkKey, {
      id: newId(),
      name,
      secretHash: await hashSdkKeySecret(secret),
      scopes: [...new Set(input.scopes)],
      workspaceIds: [...new Set(input.workspaceIds)],
      revokeTime: null,
    });
    audit(em, CLI_PRINCIPAL, 'sdk_key.create', { type: 'sdk_key', id: sdkKey.id });
    await em.flush();
    return { sdkKey, token: formatSdkKey(sdkKey.id, secret) };
  }

  async list(): Promise<SdkKey[]> {
    return this.orm.em.fork().find(SdkKey, {}, { orderBy: { id: 'asc' } });
  }

  async revoke(id: string): Promise<SdkKey> {
    requireId('id', id);
    return this.changes.transaction(this.orm.em, async (em, report) => {
      const sdkKey = await em.findOne(SdkKey, { id });
      if (!sdkKey) throw notFound('SDK key', id);
      if (!sdkKey.revokeTime) {
        sdkKey.revokeTime = new Date();
        audit(em, CLI_PRINCIPAL, 'sdk_key.revoke', { type: 'sdk_key', id });
        report({ sdkKey: id });
        await em.flush();
      }
      return sdkKey;
    });
  }

  /**
   * On a database that has never had an SDK key, issues one admin key (all
   * scopes) and returns its token so the operator can be shown it once.
   */
  async bootstrapAdmin(): Promise<string | undefined> {
    const count = await this.orm.em.fork().count(SdkKey, {});
    if (count > 0) return undefined;
    return (await this.create({ name: 'admin', scopes: [ALL_SCOPES], workspaceIds: [] })).token;
  }
}
