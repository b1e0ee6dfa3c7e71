// Keyward from TypeScript: the same walk-through as examples/python, with the
// Connect client generated in gen/ (protobuf-es v2 + @connectrpc/connect):
// create a workspace, a scope and a key, verify the key, exchange it for a JWT.
//
//   KEYWARD_SDK_KEY=kws_... node bin/run-ts.js examples/typescript/walkthrough.ts http://127.0.0.1:8080
//
// Prints one JSON object per step on stdout; never the API key's secret.
import { randomBytes } from 'node:crypto';
import { toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Action, ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeSchema } from '../../gen/keyward/v1/scope_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WorkspaceSchema } from '../../gen/keyward/v1/workspace_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';

const baseUrl = process.argv[2] ?? 'http://127.0.0.1:8080';
const sdkKey = process.env.KEYWARD_SDK_KEY;
if (!sdkKey) {
  process.stderr.write('set KEYWARD_SDK_KEY to an SDK key\n');
  process.exit(2);
}

const withSdkKey: Interceptor = (next) => (req) => {
  req.header.set('authorization', `Bearer ${sdkKey}`);
  return next(req);
};
const transport = createGrpcTransport({ baseUrl, interceptors: [withSdkKey] });
const workspaces = createClient(WorkspaceService, transport);
const scopes = createClient(ScopeService, transport);
const keys = createClient(KeyService, transport);
const tokens = createClient(TokenService, transport);

function show<D extends DescMessage>(step: string, schema: D, message: MessageShape<D>) {
  process.stdout.write(JSON.stringify({ step, ...(toJson(schema, message) as object) }) + '\n');
}

const ws = (await workspaces.createWorkspace({ workspace: { name: `typescript-${randomBytes(4).toString('hex')}`, keyPrefix: 'ts' } })).workspace!;
show('create_workspace', WorkspaceSchema, ws);

const scope = (await scopes.createScope({ scope: { workspaceId: ws.id, name: 'balance_transfers' } })).scope!;
show('create_scope', ScopeSchema, scope);

const created = await keys.createKey({
  key: { workspaceId: ws.id, customerId: 'cus_42', name: 'production', grants: [{ scope: 'balance_transfers', actions: [Action.READ] }] },
});
show('create_key', ApiKeySchema, created.key!);
const secret = created.secret; // hand it to the customer; it is never shown again

show('verify_key', KeyService.method.verifyKey.output, await keys.verifyKey({ key: secret, requiredPermissions: ['balance_transfers:read'] }));
show(
  'verify_key_missing_permission',
  KeyService.method.verifyKey.output,
  await keys.verifyKey({ key: secret, requiredPermissions: ['balance_transfers:delete'] }),
);
show('exchange_key', TokenService.method.exchangeKey.output, await tokens.exchangeKey({ key: secret, requiredPermissions: ['balance_transfers:read'] }));

try {
  await createClient(KeyService, createGrpcTransport({ baseUrl })).getKey({ id: created.key!.id });
} catch (e) {
  process.stdout.write(JSON.stringify({ step: 'without_sdk_key', code: Code[ConnectError.from(e).code] }) + '\n');
}

// Clean up: deleting the workspace revokes its keys.
await workspaces.deleteWorkspace({ id: ws.id });
process.stdout.write(JSON.stringify({ step: 'delete_workspace', id: ws.id }) + '\n');
