// Interop: an independent client (tools/wt-client, built on the `wtransport` crate, sharing no code
// with the server) runs each scenario against the echo server. The tool pins the server
// certificate by its SHA-256 hash and prints one JSON object as its last stdout line.
//
// Build it first: cargo build --release -p wt-client   (or set WT_CLIENT_BIN to a built binary).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { startEchoServer } from './support/echo-server.mjs'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'
import { settle } from './support/settle.mjs'

let echo

before(async () => {
  assertClientBuilt()
  echo = await startEchoServer()
})

after(async () => {
  if (echo) await echo.closeWithin()
})

/** Runs one scenario against the suite's echo server (or `server`). */
function runClient(args, { server = echo, ...options } = {}) {
  return runWtClient(server, args, options)
}

const assertOk = assertClientOk

/** Runs `fn` while watching for the one session it opens on the echo server; returns that session. */
async function withNewSession(fn) {
  const before = echo.sessions.length
  const result = await fn()
  assert.equal(echo.sessions.length, before + 1, 'expected exactly one new server session')
  return { result, session: echo.sessions[before] }
}

/** Waits until `predicate()` holds (polling), or `ms` passes; returns the last value it gave. */
async function waitFor(predicate, ms = 3000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = predicate()
    if (value || Date.now() >= deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('bidi-echo: 1000 bytes come back byte-exact', async () => {
  const out = assertOk(await runClient(['bidi-echo', '1000']))
  assert.equal(out.bytes, 1000)
  assert.equal(out.received, 1000)
  assert.equal(out.match, true)
  assert.equal(out.firstMismatch, null)
})

test('bidi-echo: an empty stream is finished back empty', async () => {
  const out = assertOk(await runClient(['bidi-echo', '0']))
  assert.equal(out.bytes, 0)
  assert.equal(out.received, 0)
})

test('uni-echo: a uni stream is echoed on a server-opened uni stream', async () => {
  const small = assertOk(await runClient(['uni-echo', '1000']))
  assert.equal(small.received, 1000)
  assert.equal(small.match, true)
  const larger = assertOk(await runClient(['uni-echo', '300000']))
  assert.equal(larger.received, 300000)
  assert.equal(larger.match, true)
})

test('server-streams: server-opened bidi and uni streams carry their contents', async () => {
  const out = assertOk(await runClient(['server-streams']))
  assert.equal(out.bidi, 'server bidi')
  assert.equal(out.uni, 'server uni')
})

test('datagrams: all 100 distinct datagrams are echoed', async () => {
  const out = assertOk(await runClient(['datagrams', '100']))
  assert.equal(out.count, 100)
  assert.equal(out.received, 100)
  assert.equal(out.malformed, 0)
  assert.deepEqual(out.missingFirst20, [])
})

test('bulk: 10 MB echoed byte-exact while writing and reading concurrently', async () => {
  const out = assertOk(await runClient(['bulk', '10000000'], { timeoutMs: 60000 }))
  assert.equal(out.bytes, 10000000)
  assert.equal(out.received, 10000000)
  assert.equal(out.match, true)
})

// wtransport 0.7 has no draining signal: its CONNECT-stream driver reads CLOSE_WEBTRANSPORT_SESSION
// and skips every other capsule, DRAIN_WEBTRANSPORT_SESSION included, and it ignores GOAWAY. What
// it can show is that a drained session goes on: streams still echo, and the close that follows
// the drain on the same CONNECT stream arrives with its code and reason. (The drain capsule on the
// wire is checked by the raw client in tests/hostile.rs and by aioquic, `wt.draining` by chromium.test.mjs.)
test('session.drain(): a drained session still echoes, and its later close reaches wtransport', async () => {
  const drainOnOpen = (session) => {
    if (session.request.path.startsWith('/drain')) session.drain()
  }
  echo.server.on('session', drainOnOpen)
  try {
    const echoed = await withNewSession(() => runClient(['bidi-echo', '1000'], { path: '/drain-echo' }))
    const out = assertOk(echoed.result)
    assert.equal(out.received, 1000)
    assert.equal(out.match, true)
    assert.equal((await settle(echoed.session.draining)).status, 'resolved', 'server session.draining')
    assert.equal(echoed.session.request.protocol, 'webtransport', 'wtransport speaks draft-02')

    const closed = await withNewSession(() => runClient(['server-close', '8', 'drained then closed'], { path: '/drain-close' }))
    const end = assertOk(closed.result)
    assert.equal(end.kind, 'ApplicationClosed')
    assert.equal(end.code, 8)
    assert.equal(end.reason, 'drained then closed')
    assert.equal(end.via, 'capsule', JSON.stringify(end))
  } finally {
    echo.server.off('session', drainOnOpen)
  }
})

test('server-close: the client sees the session close code and reason', async () => {
  const { result, session } = await withNewSession(() => runClient(['server-close', '7', 'server says bye']))
  const out = assertOk(result)
  assert.equal(out.kind, 'ApplicationClosed')
  assert.equal(out.code, 7)
  assert.equal(out.reason, 'server says bye')
  // wtransport reports "capsule" when the session ended through CLOSE_WEBTRANSPORT_SESSION on the
  // CONNECT stream (its driver then closes the QUIC connection itself), rather than through a
  // QUIC CONNECTION_CLOSE from the server.
  assert.equal(out.via, 'capsule', JSON.stringify(out))
  const end = await settle(session.closed)
  assert.equal(end.status, 'resolved', `server session.closed: ${end.status} ${end.error ?? ''}`)
  assert.equal(end.value.closeCode, 7)
  assert.equal(end.value.reason, 'server says bye')
})

test('client-close: the server session ends when the client closes', async () => {
  const { result, session } = await withNewSession(() => runClient(['client-close', '42', 'bye now']))
  const out = assertOk(result)
  assert.equal(out.code, 42)
  assert.equal(out.reason, 'bye now')
  // wtransport 0.7 cannot send CLOSE_WEBTRANSPORT_SESSION: Connection::close(42, "bye now") sends a
  // QUIC CONNECTION_CLOSE (application, code 42). Over HTTP/3 that is an H3 connection error, not a
  // WebTransport session close, so the server must end the session as aborted (closed rejects),
  // not report 42/"bye now" as a clean session close.
  const end = await settle(session.closed)
  assert.notEqual(end.status, 'pending', 'server session.closed did not settle after the client closed')
  assert.equal(end.status, 'rejected', `expected an aborted session, got ${JSON.stringify(end.value)}`)
})

test('expect-refused: a foreign Origin is refused by the default origin policy', async () => {
  const before = echo.sessions.length
  const out = assertOk(await runClient(['expect-refused'], { extra: ['--origin', 'https://evil.example'] }))
  assert.equal(out.refused, true)
  assert.equal(out.kind, 'SessionRejected')
  assert.equal(echo.sessions.length, before, 'a refused request must not surface as a session')
})

test('expect-refused: fails when the session is accepted (same-host Origin)', async () => {
  const result = await runClient(['expect-refused'], { extra: ['--origin', `https://127.0.0.1:${echo.port}`] })
  assert.equal(result.code, 1, result.stdout)
  assert.equal(result.json?.ok, false)
  assert.equal(result.json.refused, false)
})

test('origin: a same-host Origin opens a working session', async () => {
  const out = assertOk(await runClient(['bidi-echo', '64'], { extra: ['--origin', `https://127.0.0.1:${echo.port}`] }))
  assert.equal(out.received, 64)
})

test('certificate pinning: a wrong hash fails the handshake', async () => {
  const wrong = echo.hashHex.replace(/^./, (c) => (c === '0' ? '1' : '0'))
  const result = await runWtClient({ url: echo.url, hashHex: wrong }, ['bidi-echo', '10'], { timeoutMs: 10_000 })
  assert.equal(result.code, 1)
  const json = result.json
  assert.equal(json.ok, false)
  assert.match(json.error, /certificate|UnknownIssuer/i)
})

// WebTransport over HTTP/3 carries an application stream error code c (u32) as the HTTP/3 code
// 0x52e4a40fa8db + c + floor(c / 0x1e). wtransport 0.7 does not map codes itself (its reset/stop
// take, and its Reset/Stopped errors give, raw HTTP/3 codes), so wt-client maps them; this is an
// independent computation of the wire value to check both sides against.
const wireCode = (code) => 0x52e4a40fa8db + code + Math.floor(code / 0x1e)
const CODES = [0, 7, 4294967295]

test('reset-codes: RESET_STREAM and STOP_SENDING codes over the full u32 range, both directions', async () => {
  const before = echo.streamErrors.length
  const out = assertOk(await runClient(['reset-codes', CODES.join(',')], { timeoutMs: 30000 }))
  assert.deepEqual(out.codes, CODES)
  for (const [i, code] of CODES.entries()) {
    // (a) the client reset its sending side with the mapped code (checked on the server below).
    assert.equal(out.clientReset[i].rawSent, wireCode(code))
    // (b) `reset <code>`: the server's writer.abort(code) reached the client's read as exactly that.
    assert.deepEqual(out.serverReset[i], { code, error: 'Reset', raw: wireCode(code), decoded: code }, `server reset ${code}`)
    // (c) the client stopped reading with the mapped code (checked on the server below).
    assert.equal(out.clientStop[i].rawSent, wireCode(code))
    // (d) `stop <code>`: the server's reader.cancel(code) made the client's writes fail with it.
    assert.equal(out.serverStop[i].error, 'Stopped', `server stop ${code}: ${JSON.stringify(out.serverStop[i])}`)
    assert.equal(out.serverStop[i].raw, wireCode(code))
    assert.equal(out.serverStop[i].decoded, code)
    // After the client's reset, the echo server aborts its own side with writer.abort() and no
    // reason: the W3C default, application code 0.
    assert.deepEqual(out.clientReset[i].serverAbortAfter, { error: 'Reset', raw: wireCode(0), decoded: 0 })
  }
  // The server's side: a 'read' error per client reset and a 'write' error per client stop, with
  // the application code (the server unmapped the wire code), and nothing else.
  const expected = CODES.flatMap((code) => [
    { kind: 'read', streamErrorCode: code, source: 'stream', code: 'WT_ERR_STREAM_RESET' },
    { kind: 'write', streamErrorCode: code, source: 'stream', code: 'WT_ERR_STREAM_STOPPED' },
  ])
  await waitFor(() => echo.streamErrors.length - before >= expected.length)
  const key = (e) => `${e.kind}:${e.streamErrorCode}`
  const seen = echo.streamErrors.slice(before).sort((a, b) => key(a).localeCompare(key(b)))
  assert.deepEqual(seen, expected.sort((a, b) => key(a).localeCompare(key(b))))
})

test('subprotocols: WT-Available-Protocols from wt-client picks the server-preferred protocol', async () => {
  const chat = await startEchoServer({ protocols: ['chat-v2', 'chat-v1'] })
  try {
    const header = 'wt-available-protocols="chat-v1", "chat-v2"'
    const result = await runClient(['bidi-echo', '100'], { server: chat, path: '/chat', extra: ['--header', header] })
    const out = assertOk(result)
    assert.equal(out.received, 100)
    assert.equal(chat.sessions.length, 1)
    const [session] = chat.sessions
    assert.deepEqual(session.request.protocols, ['chat-v1', 'chat-v2'], 'the offer, parsed in the client order')
    // The server's preference wins over the client's order.
    assert.equal(session.protocol, 'chat-v2')
    // The `wt-protocol` response header cannot be checked from here: wtransport 0.7's client only
    // looks at the response status (endpoint.rs, SessionResponse) and exposes no response headers.
    // chromium-protocol.test.mjs checks the same negotiation through `wt.protocol` in the browser.
  } finally {
    await chat.close()
  }
})

test('getStats: a bidi echo shows up in the server session stats', async () => {
  const bytes = 100000
  const { result, session } = await withNewSession(() => runClient(['bidi-echo', String(bytes)]))
  const out = assertOk(result)
  assert.equal(out.received, bytes)
  const stats = await session.getStats()
  const detail = JSON.stringify(stats)
  // Loopback: a round trip well under a millisecond, but never zero (times are fractional ms).
  assert.ok(stats.rtt > 0 && stats.rtt < 100, `rtt in (0, 100) ms: ${detail}`)
  assert.ok(stats.minRtt > 0 && stats.minRtt < 100, `minRtt in (0, 100) ms: ${detail}`)
  assert.ok(stats.minRtt <= stats.rtt + 1e-9, `minRtt <= rtt: ${detail}`)
  assert.ok(stats.bytesSent > bytes, `bytesSent > ${bytes}: ${detail}`)
  assert.ok(stats.bytesReceived > bytes, `bytesReceived > ${bytes}: ${detail}`)
  assert.ok(stats.packetsSent > 0 && stats.packetsReceived > 0, detail)
  assert.ok(stats.congestionWindow > 0, detail)
  assert.deepEqual(stats.datagrams, { sent: 0, received: 0, droppedIncoming: 0 })
  // wtransport speaks the draft-02/-07 dialect: no WebTransport flow control to report.
  assert.equal(stats.flowControl, null, detail)
})

test('getStats: datagram counters match what the datagrams scenario exchanged', async () => {
  const { result, session } = await withNewSession(() => runClient(['datagrams', '100']))
  const out = assertOk(result)
  const { datagrams } = await session.getStats()
  const detail = `client ${JSON.stringify(out)}; server ${JSON.stringify(datagrams)}`
  assert.equal(datagrams.droppedIncoming, 0, detail)
  // The echo server sends back every datagram it receives.
  assert.equal(datagrams.sent, datagrams.received, detail)
  if (out.rounds === 1 && out.echoes === out.count) {
    // Nothing was lost or resent: exactly 100 each way.
    assert.equal(datagrams.received, 100, detail)
    assert.equal(datagrams.sent, 100, detail)
  } else {
    // A loss on the way made the client resend: the server got at most what was sent, and sent at
    // least what came back.
    assert.ok(datagrams.received <= out.sent && datagrams.received >= out.count, detail)
    assert.ok(datagrams.sent >= out.echoes, detail)
  }
})
