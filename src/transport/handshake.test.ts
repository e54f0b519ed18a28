import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkHello, helloToWire, parseHello } from './handshake.js';
import { parseAddress, formatAddress } from './socket-factory.js';
import { isImpulseError } from '../errors.js';
import { resolveLimits } from './options.js';

const policy = { clusterId: 'c1', localId: 1, isKnownPeer: (id: number) => id === 2, acceptUnknownPeers: false };

describe('handshake checks', () => {
  it('accepts a known peer of the same cluster addressed to us', () => {
    assert.equal(checkHello({ clusterId: 'c1', from: 2, to: 1, incarnation: 5 }, policy), null);
  });

  it('names each refusal', () => {
    assert.equal(checkHello({ clusterId: 'c2', from: 2, to: 1, incarnation: 5 }, policy), 'cluster-mismatch');
    assert.equal(checkHello({ clusterId: 'c1', from: 1, to: 1, incarnation: 5 }, policy), 'own-id');
    assert.equal(checkHello({ clusterId: 'c1', from: 2, to: 3, incarnation: 5 }, policy), 'wrong-node');
    assert.equal(checkHello({ clusterId: 'c1', from: 3, to: 1, incarnation: 5 }, policy), 'unknown-peer');
    assert.equal(checkHello({ clusterId: 'c1', from: 3, to: 1, incarnation: 5 }, { ...policy, acceptUnknownPeers: true }), null);
  });

  it('parses only well-formed HELLOs', () => {
    const hello = { clusterId: 'c1', from: 2, to: 1, incarnation: 5 };
    assert.deepEqual(parseHello(helloToWire(hello)), hello);
    for (const bad of [null, 'x', [], { cluster: 'c1', from: 0, to: 1, incarnation: 1 }, { cluster: 'c1', from: 2.5, to: 1, incarnation: 1 }, { cluster: 1, from: 2, to: 1, incarnation: 1 }, { cluster: 'c'.repeat(129), from: 2, to: 1, incarnation: 1 }, { cluster: 'c1', from: 2, to: 1 }]) {
      assert.equal(parseHello(bad), null, JSON.stringify(bad));
    }
  });
});

describe('addresses and limits', () => {
  it('parses host:port and [v6]:port, and refuses the rest with CONFIG_INVALID', () => {
    assert.deepEqual(parseAddress('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000 });
    assert.deepEqual(parseAddress('[::1]:7000'), { host: '::1', port: 7000 });
    assert.deepEqual(parseAddress('node-2.local:1'), { host: 'node-2.local', port: 1 });
    assert.equal(formatAddress({ host: '::1', port: 7 }), '[::1]:7');
    for (const bad of ['', '127.0.0.1', ':7000', '127.0.0.1:0', '127.0.0.1:70000', '::1:7000', 'a b:1']) {
      assert.throws(() => parseAddress(bad), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'), bad);
    }
  });

  it('refuses inconsistent limits', () => {
    assert.throws(() => resolveLimits({ queueMessagesMax: 0 }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    assert.throws(() => resolveLimits({ frameBytesMax: 1000, snapshotChunkBytesMax: 1000 }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    assert.throws(() => resolveLimits({ pingIntervalMs: 1000, silenceTimeoutMs: 1500 }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    assert.ok(resolveLimits().frameBytesMax > 64 * 1024 * 1024);
  });
});
