// Log fields of an error: the message, its causes, and the stack only when asked.
import { describe, expect, it } from 'vitest';
import { createLogger, errorFields } from '../../src/log.js';

describe('errorFields', () => {
  it('keeps the message and the chain of causes; the stack only for unexpected failures', () => {
    const root = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    const e = new Error('could not load the key', { cause: new Error('query failed', { cause: root }) });
    expect(errorFields(e)).toEqual({ error: 'could not load the key', causes: ['query failed', 'connect ECONNREFUSED 127.0.0.1:5432'] });
    const withStack = errorFields(e, { stack: true });
    expect(withStack.stack).toMatch(/^Error: could not load the key\n\s+at /);
    expect(errorFields('a string')).toEqual({ error: 'a string' });
    expect(errorFields(new Error('plain'))).toEqual({ error: 'plain' });
  });

  it('writes them into the JSON line', () => {
    const lines: string[] = [];
    createLogger('info', (l) => lines.push(l)).error('request failed', { rpc: 'x', ...errorFields(new Error('boom', { cause: 'why' }), { stack: true }) });
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ level: 'error', msg: 'request failed', rpc: 'x', error: 'boom', causes: ['why'] });
    expect(typeof entry.stack).toBe('string');
  });
});
