// connect-node with an empty VerifyKey handler on a plain http2 server: the
// cost of the stock Connect stack before Keyward does any work.
import http2 from 'node:http2';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';

const handler = connectNodeAdapter({
  routes: (router) => {
    router.service(KeyService, { verifyKey: async () => ({}) });
  },
});
const server = http2.createServer({}, handler);
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
