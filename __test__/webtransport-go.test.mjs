// Interop with webtransport-go (github.com/quic-go/webtransport-go), the Go library the project
// started from, as an independent client: test-tools/webtransport-go/ holds one small echo client
// per pinned version (go.mod + go.sum), sharing the scenarios of its echo/ module. Each run pins the
// server certificate by its SHA-256 hash and prints one JSON object as its last stdout line, with
// the webtransport-go and quic-go versions it was built with.
// - v0.11.1 (draft-15/16: `webtransport-h3`, SETTINGS_WT_ENABLED) runs every echo scenario.
// - v0.12 refuses the server after the QUIC handshake: it requires the reset_stream_at transport
//   parameter, which quinn 0.11 does not implement (quinn-rs/quinn#2676). That refusal is a known
//   limit (README, "How it is built"), asserted here word for word so a change on either side shows.
//
// Build them first: bash test-tools/webtransport-go/build.sh (npm test does; the Go modules come
// from scripts/install-test-tools.sh).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startEchoServer } from './support/echo-server.mjs'
import { assertClientOk, runWtClient } from './support/wt-client.mjs'
import { settle } from './support/settle.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const client = (module) => path.join(repo, 'build', 'webtransport-go', module, 'wtgo-client')
// The exact versions go.mod pins: a result from another build fails, not passes quietly.
const V011 = { bin: client('v0.11'), webtransportGo: 'v0.11.1', quicGo: 'v0.60.0' }
const V012 = { bin: client('v0.12'), webtransportGo: 'v0.12.0', quicGo: 'v0.61.0' }

let echo

before(async () => {
  for (const { bin } of [V011, V012]) {
    assert.ok(existsSync(bin), `${bin} not found: run \`bash test-tools/webtransport-go/build.sh\``)
  }
  echo = await startEchoServer()
})

after(async () => {
  if (echo) await echo.closeWithin()
})

/** Runs one scenario of `peer`'s client against the echo server; asserts which library ran. */
async function runGo(peer, args, options = {}) {
  const result = await runWtClient(options.server ?? echo, args, { bin: peer.bin, ...options })
  const detail = `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  assert.equal(result.json?.webtransportGo, peer.webtransportGo, detail)
  assert.equal(result.json.quicGo, peer.quicGo, detail)
  return result
}

/** Runs `fn` while watching for the one session it opens on the echo server; returns that session. */
async function withNewSession(fn) {
  const before = echo.sessions.length
  const result = await fn()
  assert.equal(echo.sessions.length, before + 1, 'expected exactly one new server session')
  return { result, session: echo.sessions[before] }
}

/** The server session ended with a clean close carrying this code and reason. */
async function assertServerClosed(session, closeCode, reason) {
  const end = await settle(session.closed)
  assert.equal(end.status, 'resolved', `server session.closed: ${end.status} ${end.error ?? ''}`)
  assert.deepEqual({ closeCode: end.value.closeCode, reason: end.value.reason }, { closeCode, reason })
}

test('v0.11.1 bidi-echo: a client stream comes back byte-exact, then a clean close', async () => {
  for (const bytes of [1000, 300_000]) {
    const { result, session } = await withNewSession(() => runGo(V011, ['bidi-echo', String(bytes)]))
    const out = assertClientOk(result)
    assert.equal(out.status, 200)
    assert.deepEqual({ bytes: out.bytes, received: out.received, match: out.match }, { bytes, received: bytes, match: true })
    // The draft-15/16 token, as the request reports it; v0.11.1 declares no flow control.
    assert.equal(session.request.protocol, 'webtransport-h3')
    assert.equal(session.request.method, 'CONNECT')
    assert.equal((await session.getStats()).flowControl, null)
    // The client's CloseWithError(0, "") returns only once the server ended the CONNECT stream.
    assert.equal(out.closed, true)
    await assertServerClosed(session, 0, '')
  }
})

test('v0.11.1 uni-echo: a client uni stream is echoed on a server-opened uni stream', async () => {
  for (const bytes of [1000, 300_000]) {
    const out = assertClientOk(await runGo(V011, ['uni-echo', String(bytes)]))
    assert.deepEqual({ bytes: out.bytes, received: out.received, match: out.match }, { bytes, received: bytes, match: true })
    assert.equal(out.closed, true)
  }
})

test('v0.11.1 datagrams: all 100 distinct datagrams are echoed', async () => {
  const { result, session } = await withNewSession(() => runGo(V011, ['datagrams', '100']))
  const out = assertClientOk(result)
  assert.deepEqual({ count: out.count, received: out.received, malformed: out.malformed }, { count: 100, received: 100, malformed: 0 })
  const { datagrams } = await session.getStats()
  const detail = `client ${JSON.stringify(out)}; server ${JSON.stringify(datagrams)}`
  // Resent ones (after a loss) may arrive twice; the server echoes each one it gets.
  assert.ok(datagrams.received >= 100 && datagrams.received <= out.sent, detail)
  assert.equal(datagrams.sent, datagrams.received, detail)
  assert.equal(datagrams.droppedIncoming, 0, detail)
})

test('v0.11.1 client-close: the server session ends with the client code and reason', async () => {
  const { result, session } = await withNewSession(() => runGo(V011, ['client-close', '42', 'bye now']))
  const out = assertClientOk(result)
  assert.deepEqual({ code: out.code, reason: out.reason }, { code: 42, reason: 'bye now' })
  // webtransport-go sends CLOSE_WEBTRANSPORT_SESSION on the CONNECT stream (not a QUIC
  // CONNECTION_CLOSE), so this is a clean session close with the code and reason.
  await assertServerClosed(session, 42, 'bye now')
})

test('v0.11.1 server-close: the client gets the server code and reason', async () => {
  const { result, session } = await withNewSession(() => runGo(V011, ['server-close', '7', 'server says bye']))
  const out = assertClientOk(result)
  assert.deepEqual({ remote: out.remote, code: out.code, reason: out.reason }, { remote: true, code: 7, reason: 'server says bye' })
  await assertServerClosed(session, 7, 'server says bye')
})

test('v0.11.1 certificate pinning: a wrong hash fails the handshake', async () => {
  const before = echo.sessions.length
  const wrong = echo.hashHex.replace(/^./, (c) => (c === '0' ? '1' : '0'))
  const result = await runGo(V011, ['bidi-echo', '10'], { server: { url: echo.url, hashHex: wrong }, timeoutMs: 10_000 })
  assert.equal(result.code, 1, result.stdout)
  assert.equal(result.json.ok, false)
  assert.equal(result.json.stage, 'dial')
  assert.match(result.json.error, /certificate hash mismatch/)
  assert.equal(echo.sessions.length, before)
})

test('v0.12 refuses the server: no reset_stream_at transport parameter (quinn-rs/quinn#2676)', async () => {
  const before = echo.sessions.length
  const result = await runGo(V012, ['bidi-echo', '1000'], { timeoutMs: 10_000 })
  assert.equal(result.code, 1, result.stdout)
  // After the QUIC handshake, before any HTTP/3 request: webtransport-go v0.12.0
  // client_conn.go, ClientConn.dial, checks ConnectionState().SupportsStreamResetPartialDelivery.Remote.
  assert.deepEqual(
    { ok: result.json.ok, stage: result.json.stage, status: result.json.status, errorType: result.json.errorType, error: result.json.error },
    {
      ok: false,
      stage: 'dial',
      status: 0,
      errorType: '*webtransport.RequirementsNotMetError',
      error: "server didn't enable QUIC stream reset partial delivery",
    },
    result.stdout,
  )
  assert.equal(echo.sessions.length, before, 'no CONNECT request reached the server')
})
