// Every option is validated with a clear error and code, before anything binds; and the ones
// that are observable without a browser take effect here (browser-observable ones are in
// chromium-options.test.mjs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import dgram from 'node:dgram'
import { X509Certificate, createHash } from 'node:crypto'
import { Server, generateCertificate, WebTransportError } from '../index.js'

const { cert, key } = generateCertificate({ hostnames: ['localhost', '127.0.0.1'], days: 2 })
const base = { port: 0, host: '127.0.0.1', cert, key }

function throwsWith(options, Kind, code, pattern) {
  assert.throws(
    () => new Server(options),
    (err) => err instanceof Kind && err.code === code && (!pattern || pattern.test(err.message)),
    `expected ${Kind.name} ${code} for ${JSON.stringify(Object.keys(options ?? {}))}`,
  )
}

test('bad option values throw TypeError/RangeError with WT_ERR_INVALID_OPTION', () => {
  throwsWith(undefined, TypeError, 'WT_ERR_INVALID_OPTION')
  throwsWith({ ...base, port: 70000 }, RangeError, 'WT_ERR_INVALID_OPTION', /port/)
  throwsWith({ ...base, port: 1.5 }, TypeError, 'WT_ERR_INVALID_OPTION', /port/)
  throwsWith({ ...base, port: '4433' }, TypeError, 'WT_ERR_INVALID_OPTION', /port/)
  throwsWith({ ...base, host: 42 }, TypeError, 'WT_ERR_INVALID_OPTION', /host/)
  throwsWith({ ...base, host: 'not an ip' }, TypeError, 'WT_ERR_INVALID_OPTION', /host/)
  throwsWith({ ...base, cert: undefined }, TypeError, 'WT_ERR_INVALID_OPTION', /cert/)
  throwsWith({ ...base, key: 12 }, TypeError, 'WT_ERR_INVALID_OPTION', /key/)
  throwsWith({ ...base, checkOrigin: true }, TypeError, 'WT_ERR_INVALID_OPTION', /checkOrigin/)
  throwsWith({ ...base, onRequest: 'x' }, TypeError, 'WT_ERR_INVALID_OPTION', /onRequest/)
  throwsWith({ ...base, protocols: 'chat' }, TypeError, 'WT_ERR_INVALID_OPTION', /protocols/)
  throwsWith({ ...base, protocols: [''] }, TypeError, 'WT_ERR_INVALID_OPTION', /protocols/)
  throwsWith({ ...base, callbackTimeout: 0 }, RangeError, 'WT_ERR_INVALID_OPTION', /callbackTimeout/)
  throwsWith({ ...base, maxSessions: 0 }, RangeError, 'WT_ERR_INVALID_OPTION', /maxSessions/)
  throwsWith({ ...base, maxIncomingStreams: -1 }, RangeError, 'WT_ERR_INVALID_OPTION', /maxIncomingStreams/)
  throwsWith({ ...base, maxIncomingStreams: { bidi: 'x' } }, TypeError, 'WT_ERR_INVALID_OPTION', /bidi/)
  throwsWith({ ...base, idleTimeout: 0 }, RangeError, 'WT_ERR_INVALID_OPTION', /idleTimeout/)
  throwsWith({ ...base, keepAliveInterval: -5 }, RangeError, 'WT_ERR_INVALID_OPTION', /keepAliveInterval/)
  throwsWith({ ...base, congestionControl: 'vegas' }, TypeError, 'WT_ERR_INVALID_OPTION', /congestionControl/)
  throwsWith({ ...base, datagrams: 5 }, TypeError, 'WT_ERR_INVALID_OPTION', /datagrams/)
  throwsWith({ ...base, datagrams: { incomingHighWaterMark: 0 } }, RangeError, 'WT_ERR_INVALID_OPTION', /incomingHighWaterMark/)
  throwsWith({ ...base, datagrams: { outgoingHighWaterMark: 1.5 } }, TypeError, 'WT_ERR_INVALID_OPTION', /outgoingHighWaterMark/)
  throwsWith({ ...base, closeGrace: -1 }, RangeError, 'WT_ERR_INVALID_OPTION', /closeGrace/)
  throwsWith({ ...base, fetch: 'app' }, TypeError, 'WT_ERR_INVALID_OPTION', /fetch/)
  throwsWith({ ...base, maxRequestBodySize: -1 }, RangeError, 'WT_ERR_INVALID_OPTION', /maxRequestBodySize/)
  throwsWith({ ...base, maxRequestBodySize: 1.5 }, TypeError, 'WT_ERR_INVALID_OPTION', /maxRequestBodySize/)
  throwsWith({ ...base, flowControl: 16 }, TypeError, 'WT_ERR_INVALID_OPTION', /flowControl/)
  throwsWith({ ...base, flowControl: { maxData: 0 } }, RangeError, 'WT_ERR_INVALID_OPTION', /maxData/)
  throwsWith({ ...base, flowControl: { maxData: 2 ** 60 } }, RangeError, 'WT_ERR_INVALID_OPTION', /maxData/)
  throwsWith({ ...base, flowControl: { maxStreamsBidi: 1.5 } }, TypeError, 'WT_ERR_INVALID_OPTION', /maxStreamsBidi/)
  throwsWith({ ...base, flowControl: { maxStreamsUni: 0 } }, RangeError, 'WT_ERR_INVALID_OPTION', /maxStreamsUni/)
  throwsWith({ ...base, workers: 0 }, RangeError, 'WT_ERR_INVALID_OPTION', /workers/)
  throwsWith({ ...base, workers: 65 }, RangeError, 'WT_ERR_INVALID_OPTION', /workers/)
  throwsWith({ ...base, workers: 1.5 }, TypeError, 'WT_ERR_INVALID_OPTION', /workers/)
  throwsWith({ ...base, serverId: 7 }, TypeError, 'WT_ERR_INVALID_OPTION', /serverId/)
  throwsWith({ ...base, serverId: 'xyz' }, TypeError, 'WT_ERR_INVALID_OPTION', /serverId/)
  throwsWith({ ...base, serverId: new Uint8Array(0) }, RangeError, 'WT_ERR_INVALID_OPTION', /serverId/)
  throwsWith({ ...base, serverId: new Uint8Array(15) }, RangeError, 'WT_ERR_INVALID_OPTION', /serverId/)
  throwsWith({ ...base, secret: 'thirty-one bytes is too short..' }, RangeError, 'WT_ERR_INVALID_OPTION', /secret/)
  throwsWith({ ...base, secret: {} }, TypeError, 'WT_ERR_INVALID_OPTION', /secret/)
})

test('bad certificates and keys throw TypeError before anything binds', () => {
  const other = generateCertificate({ hostnames: ['other.test'], days: 1 })
  throwsWith({ ...base, cert: 'not a pem' }, TypeError, 'WT_ERR_INVALID_CERT')
  throwsWith({ ...base, key: 'not a pem' }, TypeError, 'WT_ERR_INVALID_KEY')
  throwsWith({ ...base, key: other.key }, TypeError, 'WT_ERR_KEY_MISMATCH')
})

test('generateCertificate validates and produces a 14-day-or-shorter P-256 certificate', () => {
  assert.throws(() => generateCertificate({ days: 15 }), (e) => e instanceof RangeError && e.code === 'WT_ERR_INVALID_OPTION')
  assert.throws(() => generateCertificate({ hostnames: [] }), (e) => e.code === 'WT_ERR_INVALID_OPTION')
  assert.throws(() => generateCertificate({ hostnames: ['bad host!'] }), (e) => e.code === 'WT_ERR_INVALID_OPTION')
  const c = generateCertificate({ hostnames: ['example.test', '10.1.2.3'], days: 14 })
  const x509 = new X509Certificate(c.cert)
  const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000
  assert.ok(days <= 14 && days > 13.9, `validity ${days} days`)
  assert.equal(x509.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1')
  assert.match(x509.subjectAltName, /DNS:example\.test/)
  assert.match(x509.subjectAltName, /IP Address:10\.1\.2\.3/)
  const digest = createHash('sha256').update(x509.raw).digest()
  assert.deepEqual(Buffer.from(c.hash.value), digest)
  assert.equal(c.hash.algorithm, 'sha-256')
})

test('port, host and address(): port 0 picks a port; IPv4 and IPv6 hosts', async () => {
  const v4 = new Server(base)
  await v4.ready
  const a = v4.address()
  assert.equal(a.address, '127.0.0.1')
  assert.equal(a.family, 'IPv4')
  assert.ok(a.port > 0)
  const v6 = new Server({ ...base, host: '::1' })
  await v6.ready
  assert.deepEqual({ ...v6.address(), port: 0 }, { address: '::1', family: 'IPv6', port: 0 })
  await v4.close()
  await v6.close()
  assert.equal(v4.address(), null, 'address() is null after close')
})

test('a taken port: ready rejects and an error event carries WT_ERR_BIND / EADDRINUSE', async () => {
  const socket = dgram.createSocket('udp4')
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const server = new Server({ ...base, port: socket.address().port })
  const errorEvent = new Promise((resolve) => server.on('error', resolve))
  await assert.rejects(server.ready, (e) => e.code === 'WT_ERR_BIND' && e.systemError === 'EADDRINUSE')
  const emitted = await errorEvent
  assert.equal(emitted.code, 'WT_ERR_BIND')
  assert.equal(server.address(), null)
  socket.close()
})

test('workers: one endpoint each, and a port another group holds is refused, not joined', async () => {
  const fleet = { serverId: '0102030405060708', secret: 'a fleet secret of at least 32 bytes' }
  const first = new Server({ ...base, ...fleet, workers: 3 })
  await first.ready
  assert.equal(first.counters().workers.length, 3)
  assert.deepEqual(first.counters().workers[0], { packets: 0, misrouted: 0, connections: 0 })
  // SO_REUSEPORT alone would let a second group on the port take part of the first one's traffic.
  for (const workers of [1, 2]) {
    const second = new Server({ ...base, workers, port: first.address().port })
    second.on('error', () => {})
    await assert.rejects(second.ready, (e) => e.code === 'WT_ERR_BIND' && e.systemError === 'EADDRINUSE')
  }
  await first.close()
  const single = new Server({ ...base, workers: 1 })
  await single.ready
  assert.equal(single.counters().workers.length, 1)
  await single.close()
})

test('PEM keys in PKCS#8, SEC1 and PKCS#1 (RSA), as strings or Buffers', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-keys-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  // RSA, converted to the traditional PKCS#1 form.
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa8.pem', '-out', 'rsa.crt', '-days', '2', '-subj', '/CN=localhost')
  openssl('rsa', '-in', 'rsa8.pem', '-traditional', '-out', 'rsa1.pem')
  // EC, SEC1 form.
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec1.pem')
  openssl('req', '-x509', '-key', 'ec1.pem', '-out', 'ec.crt', '-days', '2', '-subj', '/CN=localhost')
  const read = (f) => fs.readFileSync(path.join(dir, f))
  assert.match(read('rsa1.pem').toString(), /BEGIN RSA PRIVATE KEY/)
  assert.match(read('ec1.pem').toString(), /BEGIN EC PRIVATE KEY/)
  for (const [certFile, keyFile, asString] of [['rsa.crt', 'rsa1.pem', true], ['rsa.crt', 'rsa8.pem', false], ['ec.crt', 'ec1.pem', false]]) {
    const server = new Server({ ...base, cert: asString ? read(certFile).toString() : read(certFile), key: asString ? read(keyFile).toString() : read(keyFile) })
    await server.ready
    assert.ok(server.address().port > 0, `${keyFile} loads`)
    await server.close()
  }
})

test('close() is idempotent and emits close once; asyncDispose closes', async () => {
  const server = new Server(base)
  await server.ready
  let closes = 0
  server.on('close', () => closes++)
  const first = server.close({ closeCode: 1, reason: 'x' })
  assert.equal(server.close(), first, 'a second close() returns the same promise')
  await first
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(closes, 1)
  const other = new Server(base)
  await assert.rejects(other.close({ closeCode: -1 }), (e) => e.code === 'WT_ERR_INVALID_OPTION')
  await other.close()
  // Node 22 has Symbol.asyncDispose but not the `await using` syntax (24 has both): call what it would call.
  const disposable = new Server(base)
  await disposable.ready
  await disposable[Symbol.asyncDispose]()
  assert.equal(disposable.address(), null)
})

test('WebTransportError takes the W3C and the Chromium constructor forms', () => {
  const a = new WebTransportError('m', { streamErrorCode: 7 })
  const b = new WebTransportError({ streamErrorCode: 8, message: 'n' })
  assert.deepEqual([a.message, a.streamErrorCode, a.source, a.name], ['m', 7, 'stream', 'WebTransportError'])
  assert.deepEqual([b.message, b.streamErrorCode], ['n', 8])
  assert.equal(new WebTransportError().streamErrorCode, null)
})
