import { Code, ConnectError } from '@connectrpc/connect';
import { expect } from 'vitest';
import { recordText } from './hygiene.js';

function seen(err: ConnectError): ConnectError {
  recordText('client-error', err.rawMessage);
  return err;
}

/** The error a call failed with; fails the test if it succeeded. */
export async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return seen(ConnectError.from(e));
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** The code a call failed with, or undefined if it succeeded. */
export async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return seen(ConnectError.from(e)).code;
  }
}

/** Asserts the call fails with `code`, and, if given, that the message starts by naming `field`. */
export async function expectError(p: Promise<unknown>, code: Code, field?: string): Promise<ConnectError> {
  const err = await rpcError(p);
  expect(Code[err.code], err.rawMessage).toBe(Code[code]);
  if (field !== undefined) {
    expect(err.rawMessage.startsWith(`${field}:`), `message ${JSON.stringify(err.rawMessage)} should name ${field}`).toBe(true);
  }
  return err;
}
