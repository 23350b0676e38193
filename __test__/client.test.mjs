// Our WebTransport client beyond the browsers' scenarios (client-echo.test.mjs has those): stream
// reset and close codes over the whole u32 range both ways, subprotocols, refusals, the
// certificate rules (pinned hashes as browsers apply them, roots, `ca`), keying material both
// ends agree on, the W3C constructor's errors, and a process that exits by itself once its
// last session closed.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Server, WebTransport, WebTransportError } from '../index.js'
import { startEchoServer } from './support/echo-server.mjs'
import { withTimeout } from './support/browser.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CODES = [0, 1, 255, 256, 65_535, 2 ** 31, 0xfffffffe, 0xffffffff]

let echo
before(async () => {
  echo = await startEchoServer({ protocols: ['chat-v2', 'chat-v1'] })
})
after(() => echo.closeWithin())

const pin = (hex) => [{ algorithm: 'sha-256', value: Buffer.from(hex, 'hex') }]
const open = async (path, options = {}) => {
  const wt = new WebTransport(echo.url(path), { serverCertificateHashes: pin(echo.hashHex), ...options })
  await withTimeout(wt.ready, 10_000, 'wt.ready')
  return wt
}
const serverSession = async (path) => {
  for (let i = 0; i < 250; i++) {
    const session = echo.sessions.find((s) => s.request.path === path)
    if (session) return session
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no server session for ${path}`)
}
const text = async (readable) => Buffer.concat(await Array.fromAsync(readable)).toString()

test('stream resets carry every u32 code both ways', { timeout: 60_000 }, async () => {
  const wt = await open('/codes')
  for (const code of CODES) {
    // Ours to the server: RESET_STREAM from writer.abort().
    const from = echo.streamErrors.length
    const stream = await wt.createBidirectionalStream()
    const writer = stream.writable.getWriter()
    await writer.write(new TextEncoder().encode('data first'))
    await stream.readable.getReader().read()
    await writer.abort(new WebTransportError({ streamErrorCode: code }))
    for (let i = 0; i < 250 && echo.streamErrors.length === from; i++) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(echo.streamErrors[from], { kind: 'read', streamErrorCode: code, source: 'stream', code: 'WT_ERR_STREAM_RESET' }, `abort(${code})`)

    // The server's to ours: its RESET_STREAM rejects our read with the code.
    const reset = await wt.createBidirectionalStream()
    const w = reset.writable.getWriter()
    await w.write(new TextEncoder().encode(`reset ${code}\n`))
    const error = await reset.readable.getReader().read().then(() => null, (e) => e)
    assert.ok(error instanceof WebTransportError, `server reset ${code}: ${error}`)
    assert.deepEqual({ source: error.source, streamErrorCode: error.streamErrorCode }, { source: 'stream', streamErrorCode: code })
  }
  wt.close()
  await wt.closed
})

test('session close codes and reasons over the whole u32 range, both ways', { timeout: 30_000 }, async () => {
  const reason = 'r'.repeat(1024)
  for (const code of [0, 0xffffffff]) {
    const wt = await open(`/close-ours-${code}`)
    const session = await serverSession(`/close-ours-${code}`)
    wt.close({ closeCode: code, reason })
    assert.deepEqual(await wt.closed, { closeCode: code, reason })
    assert.deepEqual(await withTimeout(session.closed, 10_000, 'server closed'), { closeCode: code, reason })

    const theirs = await open(`/close-theirs-${code}`)
    const command = await theirs.createBidirectionalStream()
    const writer = command.writable.getWriter()
    await writer.write(new TextEncoder().encode(`close ${code} from the server\n`))
    assert.deepEqual(await withTimeout(theirs.closed, 10_000, 'closed'), { closeCode: code, reason: 'from the server' })
  }
  assert.throws(() => new WebTransport(echo.url('/x')).close({ closeCode: 2 ** 32 }), RangeError)
})

test('subprotocols: the server picks among those offered; none offered or matched gives ""', { timeout: 30_000 }, async () => {
  const offered = await open('/chat-a', { protocols: ['chat-v1', 'chat-v2'] })
  assert.equal(offered.protocol, 'chat-v2')
  assert.deepEqual((await serverSession('/chat-a')).request.protocols, ['chat-v1', 'chat-v2'])
  const other = await open('/chat-b', { protocols: ['other'] })
  assert.equal(other.protocol, '')
  const none = await open('/chat-c')
  assert.equal(none.protocol, '')
  for (const wt of [offered, other, none]) wt.close()
  for (const bad of [['a', 'a'], [''], ['caf\u00e9']]) {
    assert.throws(() => new WebTransport(echo.url('/x'), { protocols: bad }), { name: 'SyntaxError' }, JSON.stringify(bad))
  }
})

test('a refused session rejects ready and closed with the status; headers reach the server', { timeout: 30_000 }, async () => {
  const certificate = echo.certificate
  const server = new Server({
    port: 0,
    host: '127.0.0.1',
    cert: certificate.cert,
    key: certificate.key,
    onRequest: (request) => (request.headers['x-token'] === 'let me in' ? undefined : 403),
  })
  await server.ready
  const url = `https://127.0.0.1:${server.address().port}/gate`
  try {
    const refused = new WebTransport(url, { serverCertificateHashes: pin(echo.hashHex) })
    const error = await refused.ready.then(() => null, (e) => e)
    assert.ok(error instanceof WebTransportError, String(error))
    assert.deepEqual({ source: error.source, code: error.code, status: error.status }, { source: 'session', code: 'WT_ERR_SESSION_REFUSED', status: 403 })
    assert.equal(await refused.closed.then(() => null, (e) => e), error)

    const admitted = new WebTransport(url, { serverCertificateHashes: pin(echo.hashHex), headers: { 'x-token': 'let me in' } })
    await withTimeout(admitted.ready, 10_000, 'ready with the header')
    admitted.close()
    await admitted.closed
  } finally {
    await server.close()
  }
})

test('keying material and stats: both ends derive the same bytes', { timeout: 30_000 }, async () => {
  const wt = await open('/keys')
  const session = await serverSession('/keys')
  const label = new TextEncoder().encode('EXPERIMENTAL my app')
  const ours = await wt.exportKeyingMaterial(label, new Uint8Array([1, 2]), 48)
  const theirs = await session.exportKeyingMaterial(label, new Uint8Array([1, 2]), 48)
  assert.equal(ours.length, 48)
  assert.deepEqual(Buffer.from(ours), Buffer.from(theirs))
  const stats = await wt.getStats()
  assert.ok(stats.rtt > 0 && stats.bytesSent > 0 && stats.packetsReceived > 0, JSON.stringify(stats))
  assert.equal(stats.smoothedRtt, stats.rtt, 'the W3C name of the same figure')
  assert.equal(wt.reliability, 'supports-unreliable')
  assert.notEqual(stats.flowControl, null, 'our client and server both use WebTransport flow control')
  wt.close()
  await wt.closed
})

test('flow control both ways: 40 streams and 4 MB through windows of 4 streams and 64 KiB', { timeout: 60_000 }, async () => {
  const small = await startEchoServer({ flowControl: { maxData: 64 << 10, maxStreamsBidi: 4, maxStreamsUni: 4 } })
  try {
    const wt = new WebTransport(small.url('/flow'), { serverCertificateHashes: pin(small.hashHex) })
    await withTimeout(wt.ready, 10_000, 'wt.ready')
    const payload = Buffer.alloc(100_000, 7)
    const echoes = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const stream = await wt.createBidirectionalStream()
        const reply = Array.fromAsync(stream.readable)
        const writer = stream.writable.getWriter()
        await writer.write(payload)
        await writer.close()
        return Buffer.concat(await reply)
      }),
    )
    assert.ok(echoes.every((echoed) => echoed.equals(payload)), 'an echo differs')
    const { flowControl } = await wt.getStats()
    assert.equal(flowControl.remoteMaxStreamsBidi >= 40, true, JSON.stringify(flowControl))
    assert.ok(flowControl.remoteMaxData >= 4_000_000, JSON.stringify(flowControl))
    assert.ok(flowControl.blocked > 0, 'our client never waited for the server\'s credit')
    wt.close()
    await wt.closed
  } finally {
    await small.closeWithin()
  }
})

test('the constructor checks like a browser: URL, hashes, options', () => {
  assert.throws(() => new WebTransport('not a url'), { name: 'SyntaxError' })
  assert.throws(() => new WebTransport('http://127.0.0.1:1/'), { name: 'SyntaxError' })
  assert.throws(() => new WebTransport('https://127.0.0.1:1/#frag'), { name: 'SyntaxError' })
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { serverCertificateHashes: [{ value: new Uint8Array(32) }] }), TypeError)
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { serverCertificateHashes: [{ algorithm: 'sha-256' }] }), TypeError)
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { allowPooling: true, serverCertificateHashes: pin('00'.repeat(32)) }), { name: 'NotSupportedError' })
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { congestionControl: 'fast' }), TypeError)
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { headers: { connection: 'close' } }), TypeError)
  assert.throws(() => new WebTransport('https://127.0.0.1:1/', { localAddress: 'here' }), TypeError)
  const wt = new WebTransport('https://127.0.0.1:1/', { congestionControl: 'low-latency' })
  assert.equal(wt.congestionControl, 'low-latency')
  assert.equal(wt.reliability, 'pending')
  wt.close()
})

test('close() while connecting rejects ready and closed, and nothing is left unhandled', { timeout: 30_000 }, async () => {
  const wt = new WebTransport(echo.url('/early'), { serverCertificateHashes: pin(echo.hashHex) })
  wt.close({ closeCode: 3, reason: 'changed my mind' })
  const error = await wt.ready.then(() => null, (e) => e)
  assert.ok(error instanceof WebTransportError && error.source === 'session', String(error))
  assert.equal(await wt.closed.then(() => null, (e) => e), error)
})

// Certificates made with openssl: a CA and a leaf it signed, and self-signed ones that break one
// W3C rule each for pinning.
function openssl(dir, ...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}
function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'wt-client-certs-'))
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n')
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=webtransport-napi test CA')
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost')
  openssl(dir, 'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '30', '-extfile', 'leaf.ext')
  // Pinned but valid 30 days, and pinned but RSA: both against the W3C rules.
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'long.key', '-out', 'long.pem', '-days', '30', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1')
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-out', 'rsa.pem', '-days', '5', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1')
  const read = (name) => readFileSync(join(dir, name), 'utf8')
  const hash = (pem) => {
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
    return execFileSync('openssl', ['dgst', '-sha256', '-hex'], { input: der }).toString().trim().split(/\s+/).pop()
  }
  const out = { ca: read('ca.pem') }
  for (const name of ['leaf', 'long', 'rsa']) out[name] = { cert: read(`${name}.pem`), key: read(`${name}.key`), hash: hash(read(`${name}.pem`)) }
  rmSync(dir, { recursive: true, force: true })
  return out
}

async function withServer(identity, run) {
  const server = new Server({ port: 0, host: '127.0.0.1', cert: identity.cert, key: identity.key })
  server.on('session', (session) => session.closed.catch(() => {}))
  await server.ready
  try {
    await run(`https://127.0.0.1:${server.address().port}/cert`)
  } finally {
    await server.close()
  }
}

async function refusal(url, options) {
  const wt = new WebTransport(url, options)
  const error = await withTimeout(wt.ready.then(() => null, (e) => e), 15_000, 'wt.ready')
  assert.ok(error instanceof WebTransportError, `expected a refusal, got ${error}`)
  assert.equal(error.code, 'WT_ERR_HANDSHAKE_FAILED')
  assert.equal(error.source, 'session')
  return error.message
}

test('certificates: pinned, wrong pin, CA through `ca`, untrusted, and the W3C pinning rules', { timeout: 60_000 }, async () => {
  const certs = makeCertificates()
  // The echo server's certificate, pinned, opens (every echo test does too); a wrong pin does not.
  assert.match(await refusal(echo.url('/pin'), { serverCertificateHashes: pin('ab'.repeat(32)) }), /matches none of serverCertificateHashes/)
  // Self-signed and not pinned: not trusted by the roots.
  assert.match(await refusal(echo.url('/roots')), /not trusted: it is not signed by a trusted root/)

  await withServer(certs.leaf, async (url) => {
    const wt = new WebTransport(url, { ca: certs.ca })
    await withTimeout(wt.ready, 10_000, 'ready with ca')
    wt.close()
    await wt.closed
    assert.match(await refusal(url), /not signed by a trusted root/)
    // The name is checked under roots: the CA's leaf names 127.0.0.1 and localhost only.
    assert.match(await refusal(url.replace('127.0.0.1', '[::ffff:127.0.0.1]'), { ca: certs.ca }), /it is not valid for ::ffff:127.0.0.1/)
  })
  await withServer(certs.long, async (url) => {
    assert.match(await refusal(url, { serverCertificateHashes: pin(certs.long.hash) }), /valid for 30 days; serverCertificateHashes accepts at most 14/)
  })
  await withServer(certs.rsa, async (url) => {
    assert.match(await refusal(url, { serverCertificateHashes: pin(certs.rsa.hash) }), /not ECDSA P-256/)
  })
})

test('the process exits by itself once its last session closed, with no unhandled rejection', { timeout: 60_000 }, async () => {
  const script = `
    const { WebTransport } = require(${JSON.stringify(ROOT)})
    const [url, hash] = process.argv.slice(1)
    const serverCertificateHashes = [{ algorithm: 'sha-256', value: Buffer.from(hash, 'hex') }]
    ;(async () => {
      // Ignored entirely: a refused one and a closed one must not surface as unhandled rejections.
      new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(32) }] })
      const wt = new WebTransport(url, { serverCertificateHashes })
      await wt.ready
      const stream = await wt.createBidirectionalStream()
      const writer = stream.writable.getWriter()
      await writer.write(new TextEncoder().encode('bye'))
      await writer.close()
      for await (const chunk of stream.readable) process.stdout.write(chunk)
      wt.close()
    })()
  `
  const started = Date.now()
  const child = spawn(process.execPath, ['--unhandled-rejections=strict', '-e', script, echo.url('/exit'), echo.hashHex], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const code = await withTimeout(new Promise((resolve) => child.on('exit', resolve)), 20_000, 'the client process to exit').catch((e) => {
    child.kill('SIGKILL')
    throw e
  })
  assert.equal(code, 0, err)
  assert.equal(out, 'bye')
  assert.equal(err, '')
  assert.ok(Date.now() - started < 15_000, `exited after ${Date.now() - started} ms`)
})

test('a server that vanishes rejects closed with source "session" (after the 30 s idle timeout)', { timeout: 60_000 }, async () => {
  // The server is another process, killed without a word: no close capsule, no CONNECTION_CLOSE.
  const script = `
    const { Server, generateCertificate } = require(${JSON.stringify(ROOT)})
    const { cert, key, hash } = generateCertificate({ days: 5 })
    const server = new Server({ port: 0, host: '127.0.0.1', cert, key })
    server.on('session', () => {})
    server.ready.then(() => console.log(JSON.stringify({ port: server.address().port, hash: Buffer.from(hash.value).toString('hex') })))
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const line = await withTimeout(new Promise((resolve) => child.stdout.once('data', (d) => resolve(String(d)))), 10_000, 'the server to start')
    const { port, hash } = JSON.parse(line)
    const wt = new WebTransport(`https://127.0.0.1:${port}/lost`, { serverCertificateHashes: pin(hash) })
    await withTimeout(wt.ready, 10_000, 'wt.ready')
    child.kill('SIGKILL')
    const started = Date.now()
    const error = await withTimeout(wt.closed.then(() => null, (e) => e), 45_000, 'wt.closed')
    assert.ok(error instanceof WebTransportError, `closed settled with ${JSON.stringify(error)}`)
    assert.deepEqual({ source: error.source, code: error.code }, { source: 'session', code: 'WT_ERR_CONNECTION_LOST' })
    assert.ok(Date.now() - started >= 20_000, 'lost before any idle timeout could have passed')
  } finally {
    child.kill('SIGKILL')
  }
})
