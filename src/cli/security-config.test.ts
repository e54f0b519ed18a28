import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopback, parseSecurityConfig } from './security-config.js';
import { isImpulseError } from '../errors.js';

function refusal(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    assert.ok(isImpulseError(error) && error.code === 'IMPULSE_ERR_CONFIG_INVALID', String(error));
    return error.message;
  }
  assert.fail('expected a configuration error');
}

describe('protected mode and the security flags', () => {
  it('tells loopback addresses from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.ok(isLoopback(host), host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', 'localhost.example.com', '::2']) assert.ok(!isLoopback(host), host);
  });

  it('refuses a non-loopback client address unless clients authenticate or --insecure-listen', () => {
    assert.match(refusal(() => parseSecurityConfig({}, '0.0.0.0', undefined)), /refusing to listen on 0\.0\.0\.0.*--insecure-listen/);
    // TLS without client certificates authenticates nobody.
    refusal(() => parseSecurityConfig({ tlsCert: 'c', tlsKey: 'k' }, '10.0.0.1', undefined));
    assert.equal(parseSecurityConfig({ tokenFile: 't' }, '0.0.0.0', undefined).tokenFile, 't');
    assert.equal(parseSecurityConfig({ tlsCert: 'c', tlsKey: 'k', tlsClientCa: 'ca' }, '0.0.0.0', undefined).clientTls?.caFile, 'ca');
    assert.equal(parseSecurityConfig({ insecureListen: true }, '0.0.0.0', undefined).insecureListen, true);
    assert.deepEqual(parseSecurityConfig({}, '127.0.0.1', undefined), { metricsOpen: false, insecureListen: false, tlsHandshakesMax: 256 });
    assert.equal(parseSecurityConfig({ tlsCert: 'c', tlsKey: 'k', tlsHandshakesMax: '8' }, '127.0.0.1', undefined).tlsHandshakesMax, 8);
  });

  it('refuses a non-loopback peer address without mutual TLS unless --insecure-listen', () => {
    assert.match(refusal(() => parseSecurityConfig({ tokenFile: 't' }, '0.0.0.0', '0.0.0.0')), /peers on 0\.0\.0\.0 without mutual TLS.*--insecure-listen/);
    const peerTls = parseSecurityConfig({ tokenFile: 't', tlsCert: 'c', tlsKey: 'k', peerTlsCa: 'ca' }, '0.0.0.0', '0.0.0.0').peerTls;
    assert.deepEqual(peerTls, { caFile: 'ca', certFile: 'c', keyFile: 'k' });
    assert.ok(parseSecurityConfig({ insecureListen: true }, '0.0.0.0', '0.0.0.0').insecureListen);
    assert.equal(parseSecurityConfig({}, '127.0.0.1', '127.0.0.1').peerTls, undefined);
  });

  it('checks that the TLS flags go together', () => {
    assert.match(refusal(() => parseSecurityConfig({ tlsCert: 'c' }, '127.0.0.1', undefined)), /--tls-cert and --tls-key go together/);
    assert.match(refusal(() => parseSecurityConfig({ tlsClientCa: 'ca' }, '127.0.0.1', undefined)), /--tls-client-ca needs --tls-cert/);
    assert.match(refusal(() => parseSecurityConfig({ peerTlsCa: 'ca' }, '127.0.0.1', undefined)), /needs --node-id/);
    assert.match(refusal(() => parseSecurityConfig({ peerTlsCa: 'ca' }, '127.0.0.1', '127.0.0.1')), /needs a certificate and key/);
    assert.match(refusal(() => parseSecurityConfig({ peerTlsCert: 'c', peerTlsKey: 'k' }, '127.0.0.1', '127.0.0.1')), /need --peer-tls-ca/);
    assert.deepEqual(parseSecurityConfig({ peerTlsCa: 'ca', peerTlsCert: 'pc', peerTlsKey: 'pk', tlsCert: 'c', tlsKey: 'k' }, '127.0.0.1', '127.0.0.1').peerTls, { caFile: 'ca', certFile: 'pc', keyFile: 'pk' });
  });
});
