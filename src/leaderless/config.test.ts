import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { DEFAULT_LEADERLESS_CONFIG, REQUEST_TIMEOUT_MS_MAX, REQUEST_TIMEOUT_MS_MIN, parseLeaderlessConfig } from './config.js';

const refused = (flags: Parameters<typeof parseLeaderlessConfig>[0], members: number | undefined, pattern: RegExp): void => {
  assert.throws(
    () => parseLeaderlessConfig(flags, members),
    (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && pattern.test(error.message),
  );
};

describe('leaderless flags', () => {
  it('--request-timeout-ms sets the coordination time, defaults to 2000 and is bounded', () => {
    assert.equal(parseLeaderlessConfig({ replication: 'leaderless' }, 3)!.requestTimeoutMs, DEFAULT_LEADERLESS_CONFIG.requestTimeoutMs);
    assert.equal(parseLeaderlessConfig({ replication: 'leaderless', requestTimeoutMs: '750' }, 3)!.requestTimeoutMs, 750);
    assert.equal(parseLeaderlessConfig({ replication: 'leaderless', requestTimeoutMs: String(REQUEST_TIMEOUT_MS_MAX) }, 3)!.requestTimeoutMs, REQUEST_TIMEOUT_MS_MAX);
    for (const bad of [String(REQUEST_TIMEOUT_MS_MIN - 1), String(REQUEST_TIMEOUT_MS_MAX + 1), '0', '-5', '1.5', 'soon', '']) {
      refused({ replication: 'leaderless', requestTimeoutMs: bad }, 3, /--request-timeout-ms/);
    }
  });

  it('leaderless flags are refused with --replication raft', () => {
    refused({ requestTimeoutMs: '500' }, 3, /--request-timeout-ms applies to --replication leaderless only/);
    refused({ replication: 'raft', replicas: '2' }, 3, /--replicas applies/);
  });
});
