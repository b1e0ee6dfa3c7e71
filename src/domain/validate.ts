import { invalidArgument } from './errors.js';
import { isId } from '../ids.js';

// Field checks shared by the domain modules. Every failure names the field.

export function requireId(field: string, value: string): string {
  if (value === '') throw invalidArgument(field, 'is required');
  if (!isId(value)) throw invalidArgument(field, 'is not a valid id');
  return value;
}

export function checkLength(field: string, value: string, max: number, opts: { required?: boolean } = {}): string {
  if (opts.required && value.trim() === '') throw invalidArgument(field, 'is required');
  if (value.length > max) throw invalidArgument(field, `must be at most ${max} characters`);
  // Postgres text cannot hold NUL; other control characters are allowed.
  if (value.includes('\u0000')) throw invalidArgument(field, 'must not contain NUL characters');
  return value;
}

export function checkPattern(field: string, value: string, re: RegExp, shape: string): string {
  if (value === '') throw invalidArgument(field, 'is required');
  if (!re.test(value)) throw invalidArgument(field, `must match ${shape}`);
  return value;
}

/** A time range's end, if both ends are set, must come after its start. */
export function checkTimeOrder(start: Date | undefined, end: Date | undefined): void {
  if (start && end && end.getTime() <= start.getTime()) throw invalidArgument('end_time', 'must be after start_time');
}

const METADATA_LIMITS = { entries: 64, keyLength: 128, valueLength: 1024 };

export function checkMetadata(field: string, metadata: Record<string, string>): Record<string, string> {
  const entries = Object.entries(metadata);
  if (entries.length > METADATA_LIMITS.entries) {
    throw invalidArgument(field, `must have at most ${METADATA_LIMITS.entries} entries`);
  }
  for (const [k, v] of entries) {
    if (k === '') throw invalidArgument(field, 'keys must not be empty');
    checkLength(`${field} key`, k, METADATA_LIMITS.keyLength);
    checkLength(`${field}[${JSON.stringify(k.slice(0, 32))}]`, v, METADATA_LIMITS.valueLength);
  }
  return Object.fromEntries(entries);
}

/** Resolves an update mask against the paths a resource allows. */
export function checkUpdateMask<P extends string>(paths: readonly string[], allowed: readonly P[]): Set<P> {
  if (paths.length === 0) throw invalidArgument('update_mask', 'must name at least one field');
  const out = new Set<P>();
  for (const p of paths) {
    if (!(allowed as readonly string[]).includes(p)) {
      throw invalidArgument('update_mask', `unknown or read-only field ${JSON.stringify(p.slice(0, 64))}; allowed: ${allowed.join(', ')}`);
    }
    out.add(p as P);
  }
  return out;
}
