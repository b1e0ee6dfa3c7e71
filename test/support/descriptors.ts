// Every RPC of every generated Keyward service, found at load time: tests that
// must cover all RPCs (fuzzing, authorization) enumerate these, so an RPC
// added to proto/ is covered without touching them.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DescMethod, DescService } from '@bufbuild/protobuf';

const GEN_ROOT = path.resolve(import.meta.dirname, '../../gen');
const GEN_DIR = path.join(GEN_ROOT, 'keyward/v1');

/** Every service of every generated *_pb.ts file in `dir` (and below it, if `recursive`). */
async function servicesIn(dir: string, recursive: boolean): Promise<DescService[]> {
  const out: DescService[] = [];
  const files = (readdirSync(dir, { recursive }) as string[]).filter((f) => f.endsWith('_pb.ts')).sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(dir, f.replace(/\.ts$/, '.js'))).href)) as Record<string, unknown>;
    for (const v of Object.values(mod)) {
      if ((v as { kind?: unknown })?.kind === 'service') out.push(v as DescService);
    }
  }
  return out;
}

/** Keyward's services: those generated in gen/keyward/v1. */
export const SERVICES: DescService[] = await servicesIn(GEN_DIR, false);
/**
 * Every service generated anywhere in gen/, Keyward's or not. The modules are
 * the ones SERVICES came from, so the same service is the same object in both.
 */
export const ALL_GENERATED: DescService[] = await servicesIn(GEN_ROOT, true);

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
