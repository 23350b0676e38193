// Interop: an independent client (tools/wt-client, built on the `wtransport` crate, sharing no code
// with the server) runs each scenario against the echo server. The tool pins the server
// certificate by its SHA-256 hash and prints one JSON object as its last stdout line.
//
// Build it first: cargo build --release -p wt-client   (or set WT_CLIENT_BIN to a built binary).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startEchoServer } from './support/echo-server.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = process.env.WT_CLIENT_BIN || path.join(repo, 'target', 'release', 'wt-client')

let echo

before(async () => {
  assert.ok(
    existsSync(BIN),
    `wt-client binary not found at ${BIN}: run \`cargo build --release -p wt-client\` or set WT_CLIENT_BIN`,
  )
  echo = await startEchoServer()
})

after(async () => {
  if (!echo) return
  // A close that never settles is a server bug: report it instead of hanging the run.
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('echo server close() did not settle within 10 s')), 10000)
  })
  try {
    await Promise.race([echo.close(), timeout])
  } finally {
    clearTimeout(timer)
  }
})

/** Runs one scenario; resolves with the exit code, the parsed last JSON line and the raw output. */
function runClient(args, { path: urlPath = '/echo', timeoutMs = 20000, extra = [] } = {}) {
  const argv = ['--url', echo.url(urlPath), '--cert-hash', echo.hashHex, '--timeout-ms', String(timeoutMs), ...extra, ...args]
  return new Promise((resolve) => {
    execFile(BIN, argv, { timeout: timeoutMs + 10000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const lines = stdout.trim().split('\n').filter(Boolean)
      let json = null
      try {
        json = JSON.parse(lines.at(-1) ?? '')
      } catch {}
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0
      resolve({ code, json, stdout, stderr, killed: error?.killed ?? false })
    })
  })
}

/** Asserts the tool reported success, with its whole output in the message when it did not. */
function assertOk(result) {
  const detail = `exit ${result.code}${result.killed ? ' (killed)' : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  assert.ok(result.json, `no JSON on the last stdout line: ${detail}`)
  assert.equal(result.json.ok, true, detail)
  assert.equal(result.code, 0, detail)
  return result.json
}

/** Runs `fn` while watching for the one session it opens on the echo server; returns that session. */
async function withNewSession(fn) {
  const before = echo.sessions.length
  const result = await fn()
  assert.equal(echo.sessions.length, before + 1, 'expected exactly one new server session')
  return { result, session: echo.sessions[before] }
}

function settle(promise, ms = 5000) {
  return Promise.race([
    promise.then(
      (value) => ({ status: 'resolved', value }),
      (error) => ({ status: 'rejected', error }),
    ),
    new Promise((resolve) => setTimeout(() => resolve({ status: 'pending' }), ms).unref()),
  ])
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
  const argv = ['--url', echo.url(), '--cert-hash', wrong, '--timeout-ms', '10000', 'bidi-echo', '10']
  const result = await new Promise((resolve) => {
    execFile(BIN, argv, { timeout: 20000 }, (error, stdout) => resolve({ code: error?.code ?? 0, stdout }))
  })
  assert.equal(result.code, 1)
  const json = JSON.parse(result.stdout.trim().split('\n').at(-1))
  assert.equal(json.ok, false)
  assert.match(json.error, /certificate|UnknownIssuer/i)
})
