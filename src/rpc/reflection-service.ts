// gRPC server reflection (grpc.reflection.v1 and v1alpha), so grpcurl,
// Postman and `buf curl --reflect` can call Keyward without local protos.
// The descriptors are the ones protobuf-es embedded in gen/.
import { toBinary, type DescEnum, type DescFile, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import type { ServerReflection as ReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import type { ServerReflection as ReflectionV1Alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';

type Question =
  | { case: 'fileByFilename' | 'fileContainingSymbol' | 'allExtensionNumbersOfType' | 'listServices'; value: string }
  | { case: 'fileContainingExtension'; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };

type Answer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: 'allExtensionNumbersResponse'; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

/** Every file of the served services and their imports, by file name and by the symbols they define. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  constructor(private readonly services: readonly DescService[]) {
    for (const s of services) this.addFile(s.file);
  }

  private addFile(f: DescFile): void {
    if (this.files.has(f.proto.name)) return;
    this.files.set(f.proto.name, f);
    for (const d of f.dependencies) this.addFile(d);
    const addEnum = (e: DescEnum) => this.symbols.set(e.typeName, f);
    const addMessage = (m: DescMessage) => {
      this.symbols.set(m.typeName, f);
      m.nestedMessages.forEach(addMessage);
      m.nestedEnums.forEach(addEnum);
    };
    f.messages.forEach(addMessage);
    f.enums.forEach(addEnum);
    for (const s of f.services) {
      this.symbols.set(s.typeName, f);
      for (const m of s.methods) this.symbols.set(`${s.typeName}.${m.name}`, f);
    }
    for (const x of f.extensions) {
      const byNumber = this.extensions.get(x.extendee.typeName) ?? new Map<number, DescFile>();
      byNumber.set(x.number, f);
      this.extensions.set(x.extendee.typeName, byNumber);
    }
  }

  /** The file and every file it imports, transitively; the file itself first. */
  private withImports(f: DescFile): Uint8Array[] {
    const out: DescFile[] = [];
    const visit = (x: DescFile) => {
      if (out.includes(x)) return;
      out.push(x);
      x.dependencies.forEach(visit);
    };
    visit(f);
    return out.map((x) => {
      let bytes = this.encoded.get(x);
      if (!bytes) this.encoded.set(x, (bytes = toBinary(FileDescriptorProtoSchema, x.proto)));
      return bytes;
    });
  }

  answer(q: Question): Answer {
    const notFound = (what: string): Answer => ({ case: 'errorResponse', value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } });
    const files = (f: DescFile | undefined, what: string): Answer =>
      f ? { case: 'fileDescriptorResponse', value: { fileDescriptorProto: this.withImports(f) } } : notFound(what);
    switch (q.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: this.services.map((s) => ({ name: s.typeName })) } };
      case 'fileByFilename':
        return files(this.files.get(q.value), `file ${JSON.stringify(q.value)}`);
      case 'fileContainingSymbol':
        return files(this.symbols.get(q.value.replace(/^\./, '')), `symbol ${JSON.stringify(q.value)}`);
      case 'fileContainingExtension':
        return files(
          this.extensions.get(q.value.containingType)?.get(q.value.extensionNumber),
          `extension ${q.value.extensionNumber} of ${JSON.stringify(q.value.containingType)}`,
        );
      case 'allExtensionNumbersOfType': {
        if (!this.symbols.has(q.value)) return notFound(`type ${JSON.stringify(q.value)}`);
        const numbers = [...(this.extensions.get(q.value)?.keys() ?? [])].sort((a, b) => a - b);
        return { case: 'allExtensionNumbersResponse', value: { baseTypeName: q.value, extensionNumber: numbers } };
      }
      default:
        return { case: 'errorResponse', value: { errorCode: Code.InvalidArgument, errorMessage: 'the request names no question' } };
    }
  }
}

/** One stream answers any number of questions, each in turn. */
function reflectionImpl(index: DescriptorIndex) {
  return {
    async *serverReflectionInfo(requests: AsyncIterable<{ host: string; messageRequest: Question }>) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: index.answer(req.messageRequest) };
      }
    },
  };
}

export function reflectionV1(index: DescriptorIndex): ServiceImpl<typeof ReflectionV1> {
  return reflectionImpl(index) as unknown as ServiceImpl<typeof ReflectionV1>;
}

export function reflectionV1Alpha(index: DescriptorIndex): ServiceImpl<typeof ReflectionV1Alpha> {
  return reflectionImpl(index) as unknown as ServiceImpl<typeof ReflectionV1Alpha>;
}
