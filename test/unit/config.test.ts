import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('takes a fractional rate of failed SDK key checks, and the default when unset', () => {
    expect(loadConfig({ KEYWARD_SDK_KEY_FAILURES_PER_SECOND: '0.1' }).sdkKeyFailuresPerSecond).toBe(0.1);
    expect(loadConfig({}).sdkKeyFailuresPerSecond).toBe(2);
  });

  it.each(['0', '-1', 'abc', 'Infinity'])('refuses the rate %j, naming the variable', (raw) => {
    expect(() => loadConfig({ KEYWARD_SDK_KEY_FAILURES_PER_SECOND: raw })).toThrow(
      `KEYWARD_SDK_KEY_FAILURES_PER_SECOND must be a number > 0, got ${JSON.stringify(raw)}`,
    );
  });

  it('refuses a fraction where a count is expected', () => {
    expect(() => loadConfig({ KEYWARD_SDK_KEY_FAILURE_BURST: '1.5' })).toThrow('KEYWARD_SDK_KEY_FAILURE_BURST must be an integer >= 1, got "1.5"');
  });

  it('takes the per-key budget of token exchanges (ExchangeOwnKey), 60 a minute by default', () => {
    expect(loadConfig({}).tokenExchangesPerMinute).toBe(60);
    expect(loadConfig({ KEYWARD_TOKEN_EXCHANGES_PER_MINUTE: '5' }).tokenExchangesPerMinute).toBe(5);
    expect(() => loadConfig({ KEYWARD_TOKEN_EXCHANGES_PER_MINUTE: '0' })).toThrow('KEYWARD_TOKEN_EXCHANGES_PER_MINUTE must be an integer >= 1, got "0"');
  });
});
