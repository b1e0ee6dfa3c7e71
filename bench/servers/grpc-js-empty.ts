// @grpc/grpc-js with an empty unary VerifyKey handler (the proto loaded from
// proto/ with @grpc/proto-loader): what the reference gRPC server for Node
// costs per call before any work.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const protoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');
const def = protoLoader.loadSync('keyward/v1/key_service.proto', { includeDirs: [protoDir], keepCase: false, defaults: false });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pkg = grpc.loadPackageDefinition(def) as any;
const service = pkg.keyward.v1.KeyService.service as grpc.ServiceDefinition;

const server = new grpc.Server();
server.addService(service, {
  verifyKey: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, {}),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`bind failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`LISTENING ${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
