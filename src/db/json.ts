/**
 * A json/jsonb column of a raw query's row: the driver parses most such
 * values itself, but some arrive as their text (e.g. a json_build_object
 * expression), so both are accepted.
 */
export function jsonColumn<T>(value: T | string): T {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}
