// Structured logs: one JSON object per line on stderr. Callers pass
// identifiers and error messages only, never request bodies or credentials.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(level: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  const min = ORDER[level];
  const emit = (lvl: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }));
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/**
 * An error as log fields: its message, the messages of its causes, and (with
 * `stack`, for failures nobody expected) its stack. Never the request.
 */
export function errorFields(e: unknown, opts: { stack?: boolean } = {}): Record<string, unknown> {
  if (!(e instanceof Error)) return { error: String(e) };
  const causes: string[] = [];
  for (let c: unknown = e.cause; c !== undefined && causes.length < 5; c = c instanceof Error ? c.cause : undefined) {
    causes.push(c instanceof Error ? c.message : String(c));
  }
  return { error: e.message, ...(causes.length > 0 && { causes }), ...(opts.stack && e.stack && { stack: e.stack }) };
}

export function isLevel(s: string): s is Level {
  return s in ORDER;
}
