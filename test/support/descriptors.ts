// Every RPC of every generated *_service_pb.ts, found at load time: tests that
// must cover all RPCs (fuzzing, authorization) enumerate these, so an RPC
// added to proto/ is covered without touching them.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DescMethod, DescService } from '@bufbuild/protobuf';

const GEN_DIR = path.resolve(import.meta.dirname, '../../gen/keyward/v1');

export const SERVICES: DescService[] = [];
for (const f of readdirSync(GEN_DIR).filter((f) => f.endsWith('_service_pb.ts')).sort()) {
  const mod = (await import(pathToFileURL(path.join(GEN_DIR, f.replace(/\.ts$/, '.js'))).href)) as Record<string, unknown>;
  for (const v of Object.values(mod)) {
    if ((v as { kind?: unknown })?.kind === 'service') SERVICES.push(v as DescService);
  }
}

export interface Rpc {
  /** `Service/Method`, as in test/e2e/authz-matrix.ts. */
  name: string;
  service: DescService;
  method: DescMethod;
  /** The URL path: `/keyward.v1.Service/Method`. */
  path: string;
}

export const RPCS: Rpc[] = SERVICES.flatMap((service) =>
  service.methods.map((method) => ({
    name: `${service.name}/${method.name}`,
    service,
    method,
    path: `/${service.typeName}/${method.name}`,
  })),
);
