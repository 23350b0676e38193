// Option effects: options.test.mjs checks that options are validated; here each option is shown to
// TAKE EFFECT on a real connection, from headless Chromium (support/browser.mjs) or the independent
// wt-client tool (tools/wt-client, wtransport crate). Every test starts its own server with the
// option under test, bounds its waits, and closes the server in `finally`.
//
// Not here: callbackTimeout (check-origin.test.mjs), maxSessions and protocols
// (chromium-protocol.test.mjs).
//
// wt-client: cargo build --release -p wt-client, or set WT_CLIENT_BIN to a built binary.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { Server, generateCertificate } from '../index.js'
import { startEchoServer } from './support/echo-server.mjs'
import { assertClientBuilt, runWtClient } from './support/wt-client.mjs'
import { startBrowserEnv, runInPage, closePage, withTimeout } from './support/browser.mjs'
import { settle } from './support/settle.mjs'


const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 3 })
const hashHex = Buffer.from(certificate.hash.value).toString('hex')

let env

before(async () => {
  env = await startBrowserEnv()
})

after(async () => {
  await env?.close()
})

/** A server with `options` on 127.0.0.1; `onSession` gets each session (closed is pre-caught). */
async function startServer(options, onSession = () => {}) {
  const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key, ...options })
  const sessions = []
  server.on('session', (session) => {
    sessions.push(session)
    session.closed.catch(() => {})
    onSession(session)
  })
  await server.ready
  const { port } = server.address()
  return {
    server,
    sessions,
    url: (p = '/options') => `https://127.0.0.1:${port}${p}`,
    close: (info) => withTimeout(server.close(info), 10_000, 'closing the server'),
  }
}

/** The next session the server emits, or a rejection after `ms`. */
function nextSession(server, ms = 10_000) {
  return withTimeout(new Promise((resolve) => server.once('session', resolve)), ms, 'waiting for a session')
}

/** A fresh page on the same-host origin; close it with closePage(page). */
function openPage() {
  return env.browser.newPage(env.sameOriginUrl())
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `predicate()` until it holds or `ms` passes; returns its last value. */
async function waitFor(predicate, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = predicate()
    if (value || Date.now() >= deadline) return value
    await sleep(20)
  }
}

/** Settles `promise` into { status, value | error, ms } or { status: 'pending' } after `ms`. */
function runClient(server, args, { timeoutMs = 30_000 } = {}) {
  return runWtClient(server, args, { timeoutMs })
}

// ---------------------------------------------------------------------------------------------
// maxIncomingStreams

// In the page: opens bidi (or uni) streams until Chromium refuses one (it rejects
// createBidirectionalStream at once when the server's MAX_STREAMS is used up; it does not queue),
// writing one chunk on each and keeping them open. State stays in `window` for the next step.
async function openUntilRefused({ url, hashHex, kind, tries }) {
  const wt = T.connect(url, hashHex)
  await T.timeout(wt.ready, 10_000, 'wt.ready')
  window.wt = wt
  window.held = []
  let refused = null
  for (let i = 0; i < tries; i++) {
    try {
      const stream = kind === 'bidi' ? await wt.createBidirectionalStream() : await wt.createUnidirectionalStream()
      const writer = (kind === 'bidi' ? stream.writable : stream).getWriter()
      await writer.write(T.enc(`${kind} ${i}\n`))
      window.held.push({ stream, writer })
    } catch (error) {
      refused = T.describeError(error)
      break
    }
  }
  return { opened: window.held.length, refused }
}

// In the page: finishes the first held stream (and for bidi reads the echo to its end, so the
// stream is closed both ways), then retries opening a stream until one is granted.
async function finishOneThenOpen({ kind }) {
  const first = window.held.shift()
  await first.writer.close()
  if (kind === 'bidi') await T.timeout(T.readAll(first.stream.readable), 5_000, 'echo of the finished stream')
  const started = performance.now()
  for (let attempt = 1; ; attempt++) {
    try {
      const stream = kind === 'bidi' ? await window.wt.createBidirectionalStream() : await window.wt.createUnidirectionalStream()
      const writer = (kind === 'bidi' ? stream.writable : stream).getWriter()
      await writer.write(T.enc(`${kind} after\n`))
      window.held.push({ stream, writer })
      return { attempt, ms: performance.now() - started }
    } catch (error) {
      if (performance.now() - started > 5_000) return { attempt, failed: T.describeError(error) }
      await T.sleep(50)
    }
  }
}

/** Accepts every incoming stream of `kind`, recording each; bidi streams are echoed, uni read out. */
function acceptStreams(session, kind, accepted) {
  void (async () => {
    const incoming = kind === 'bidi' ? session.incomingBidirectionalStreams : session.incomingUnidirectionalStreams
    for await (const stream of incoming) {
      accepted.push(Date.now())
      if (kind === 'bidi') stream.readable.pipeTo(stream.writable).catch(() => {})
      else stream.pipeTo(new WritableStream()).catch(() => {})
    }
  })().catch(() => {})
}

for (const kind of ['bidi', 'uni']) {
  test(`maxIncomingStreams { bidi: 2, uni: 1 }: ${kind} streams beyond the limit wait until one closes`, { timeout: 60_000 }, async () => {
    const accepted = []
    const wt = await startServer({ maxIncomingStreams: { bidi: 2, uni: 1 } }, (session) => acceptStreams(session, kind, accepted))
    const page = await openPage()
    try {
      const first = await runInPage(page, openUntilRefused, { url: wt.url(), hashHex, kind, tries: 4 })
      const limit = kind === 'bidi' ? 2 : 1
      assert.equal(first.opened, limit, `opened ${first.opened} ${kind} streams with limit ${limit}`)
      assert.equal(first.refused?.name, 'NetworkError', `the stream beyond the limit is refused: ${JSON.stringify(first)}`)
      await waitFor(() => accepted.length >= first.opened, 5_000)
      await sleep(500)
      assert.equal(accepted.length, first.opened, 'after 500 ms the server has accepted only the streams within the limit')

      const second = await runInPage(page, finishOneThenOpen, { kind })
      assert.equal(second.failed, undefined, `a stream is granted once one closed: ${JSON.stringify(second)}`)
      await waitFor(() => accepted.length > first.opened, 5_000)
      assert.equal(accepted.length, first.opened + 1, 'the stream opened after one closed reaches the server')
      await runInPage(page, () => window.wt.close())
    } finally {
      await closePage(page)
      await wt.close()
    }
  })
}

// Regression: the session's own CONNECT request is a client-opened bidi stream, and once took
// one of the `bidi` slots, so a session could hold only `bidi - 1` WebTransport streams.
test(
  'maxIncomingStreams { bidi: 2 }: a session can hold 2 bidi streams at once',
  { timeout: 30_000 },
  async () => {
    const wt = await startServer({ maxIncomingStreams: { bidi: 2, uni: 1 } }, (session) => acceptStreams(session, 'bidi', []))
    const page = await openPage()
    try {
      const result = await runInPage(page, openUntilRefused, { url: wt.url(), hashHex, kind: 'bidi', tries: 3 })
      await runInPage(page, () => window.wt.close())
      assert.equal(result.opened, 2, JSON.stringify(result))
    } finally {
      await closePage(page)
      await wt.close()
    }
  },
)

// ---------------------------------------------------------------------------------------------
// idleTimeout / keepAliveInterval

test('idleTimeout: 500 without keep-alive drops an idle session within ~3 s', { timeout: 30_000 }, async () => {
  const wt = await startServer({ idleTimeout: 500 })
  const page = await openPage()
  try {
    const sessionP = nextSession(wt.server)
    // The page connects and then does nothing but wait for `closed`.
    const pageResult = runInPage(
      page,
      async ({ url, hashHex }) => {
        const wt = T.connect(url, hashHex)
        await T.timeout(wt.ready, 10_000, 'wt.ready')
        const started = performance.now()
        try {
          const value = await T.timeout(wt.closed, 8_000, 'wt.closed')
          return { status: 'resolved', value, ms: performance.now() - started }
        } catch (error) {
          return { status: 'rejected', error: T.describeError(error), ms: performance.now() - started }
        }
      },
      { url: wt.url(), hashHex },
    )
    const session = await sessionP
    const end = await settle(session.closed, 3_000)
    assert.equal(end.status, 'rejected', `the idle session's closed should reject as lost, got ${end.status} ${JSON.stringify(end.value)}`)
    assert.equal(end.error.name, 'WebTransportError')
    assert.equal(end.error.source, 'session', `${end.error.code}: ${end.error.message}`)
    // Not an immediate failure: the session lived about as long as the idle timeout.
    assert.ok(end.ms >= 300, `dropped after ${end.ms} ms`)
    const inPage = await pageResult
    assert.equal(inPage.status, 'rejected', `the page saw the connection go: ${JSON.stringify(inPage)}`)
  } finally {
    await closePage(page)
    await wt.close()
  }
})

test('keepAliveInterval: 100 keeps a session idle for 2 s open under idleTimeout: 500', { timeout: 30_000 }, async () => {
  let closedDuringIdle = null
  const wt = await startServer({ idleTimeout: 500, keepAliveInterval: 100 }, (session) => {
    session.closed.then(
      () => (closedDuringIdle ??= 'resolved'),
      () => (closedDuringIdle ??= 'rejected'),
    )
    void (async () => {
      for await (const { readable, writable } of session.incomingBidirectionalStreams) {
        // Record whether the session was still open when the page came back after its idle time.
        closedDuringIdle ??= 'open'
        readable.pipeTo(writable).catch(() => {})
      }
    })().catch(() => {})
  })
  try {
    const result = await env.run(
      'same',
      async ({ url, hashHex }) => {
        const wt = T.connect(url, hashHex)
        await T.timeout(wt.ready, 10_000, 'wt.ready')
        let lost = null
        wt.closed.then(
          () => (lost ??= 'closed'),
          (e) => (lost ??= String(e)),
        )
        await T.sleep(2_000)
        const lostAfterIdle = lost
        const stream = await wt.createBidirectionalStream()
        const writer = stream.writable.getWriter()
        await writer.write(T.enc('still here'))
        await writer.close()
        const echo = T.dec(await T.timeout(T.readAll(stream.readable), 5_000, 'echo after idle'))
        wt.close()
        return { lostAfterIdle, echo }
      },
      { url: wt.url(), hashHex },
    )
    assert.deepEqual(result, { lostAfterIdle: null, echo: 'still here' })
    assert.equal(closedDuringIdle, 'open', 'the server session was still open after 2 s of application silence')
  } finally {
    await wt.close()
  }
})

// ---------------------------------------------------------------------------------------------
// congestionControl

// The controller is internal to QUIC: from outside, the observable effect is that a server built
// with each one works end to end and moves a bulk transfer (2 MB echoed byte-exact). The controller's
// congestion window is reported for information only; its value depends on timing.
for (const congestionControl of ['cubic', 'bbr', 'newreno']) {
  test(`congestionControl: '${congestionControl}' completes a 2 MB echo`, { timeout: 60_000 }, async () => {
    assertClientBuilt()
    const echo = await startEchoServer({ congestionControl })
    try {
      const result = await runClient(echo, ['bidi-echo', '2000000'])
      const detail = `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
      assert.equal(result.json?.ok, true, detail)
      assert.equal(result.json.received, 2_000_000)
      assert.equal(result.json.match, true)
      assert.equal(echo.sessions.length, 1)
      const stats = await echo.sessions[0].getStats()
      assert.ok(stats.bytesSent > 2_000_000 && stats.congestionWindow > 0, JSON.stringify(stats))
    } finally {
      await withTimeout(echo.close(), 10_000, 'closing the echo server')
    }
  })
}

// ---------------------------------------------------------------------------------------------
// datagrams.incomingHighWaterMark

test('datagrams.incomingHighWaterMark: 4 keeps the newest 4 of 50 unread datagrams', { timeout: 30_000 }, async () => {
  // A server that does not read datagrams until told to.
  const wt = await startServer({ datagrams: { incomingHighWaterMark: 4 } })
  const page = await openPage()
  try {
    const sessionP = nextSession(wt.server)
    const sent = await runInPage(
      page,
      async ({ url, hashHex, count }) => {
        const wt = T.connect(url, hashHex)
        await T.timeout(wt.ready, 10_000, 'wt.ready')
        window.wt = wt
        const writer = wt.datagrams.writable.getWriter()
        for (let i = 0; i < count; i++) await writer.write(T.enc(`dg ${i}`))
        writer.releaseLock()
        // Let them all reach the server.
        await T.sleep(300)
        return count
      },
      { url: wt.url(), hashHex, count: 50 },
    )
    const session = await sessionP
    const deadline = Date.now() + 3_000
    let stats = await session.getStats()
    while (stats.datagrams.received < sent && Date.now() < deadline) {
      await sleep(50)
      stats = await session.getStats()
    }
    assert.equal(stats.datagrams.received, sent, `all ${sent} datagrams arrived (loopback): ${JSON.stringify(stats.datagrams)}`)
    // Only now the server reads: whatever is queued comes out at once, then nothing more.
    const reader = session.datagrams.readable.getReader()
    const got = []
    for (;;) {
      const next = await settle(reader.read(), 300)
      if (next.status !== 'resolved' || next.value.done) break
      got.push(Buffer.from(next.value.value).toString())
    }
    assert.deepEqual(got, ['dg 46', 'dg 47', 'dg 48', 'dg 49'], 'the queue kept the newest 4, in order')
    const after = await session.getStats()
    assert.ok(after.datagrams.droppedIncoming >= 46, `droppedIncoming: ${JSON.stringify(after.datagrams)}`)
    assert.equal(after.datagrams.droppedIncoming + got.length, after.datagrams.received)
    await runInPage(page, () => window.wt.close())
  } finally {
    await closePage(page)
    await wt.close()
  }
})

// ---------------------------------------------------------------------------------------------
// closeGrace

// A page that connects and then only waits for `closed` (it never closes by itself).
async function connectAndWait({ url, hashHex }) {
  const wt = T.connect(url, hashHex)
  await T.timeout(wt.ready, 10_000, 'wt.ready')
  window.wt = wt
  window.closedResult = wt.closed.then(
    (value) => ({ status: 'resolved', value }),
    (error) => ({ status: 'rejected', error: T.describeError(error) }),
  )
}

for (const { closeGrace, check } of [
  { closeGrace: 200, check: (ms) => assert.ok(ms < 1_500, `close() took ${ms} ms with closeGrace 200`) },
  { closeGrace: 3_000, check: (ms) => assert.ok(ms > 2_000 && ms < 8_000, `close() took ${ms} ms with closeGrace 3000`) },
]) {
  test(`closeGrace: ${closeGrace} bounds how long close() waits for an idle client`, { timeout: 30_000 }, async () => {
    const wt = await startServer({ closeGrace })
    const page = await openPage()
    try {
      const sessionP = nextSession(wt.server)
      await runInPage(page, connectAndWait, { url: wt.url(), hashHex })
      const session = await sessionP
      const started = Date.now()
      await wt.close({ closeCode: 4001, reason: 'going away' })
      check(Date.now() - started)
      const inPage = await runInPage(page, () => T.timeout(window.closedResult, 5_000, 'wt.closed'))
      assert.deepEqual(inPage, { status: 'resolved', value: { closeCode: 4001, reason: 'going away' } })
      assert.deepEqual(await session.closed, { closeCode: 4001, reason: 'going away' })
    } finally {
      await closePage(page)
      await wt.close()
    }
  })
}

// QUIC holds at most outgoingHighWaterMark datagrams for sending and drops the oldest beyond it:
// a burst far larger than the mark mostly vanishes, while a large mark delivers it all.
/**
 * Page side of the burst tests: asks the echo server for a datagram burst with `command`, counts
 * what arrives within `settleMs` after the server says it sent everything, and how many distinct
 * sequence numbers (the first 4 bytes) were among them.
 */
async function receiveBurst({ url, hashHex, command, settleMs }) {
  const wt = T.connect(url, hashHex)
  await T.timeout(wt.ready, 10_000, 'wt.ready')
  const seen = new Set()
  let count = 0
  const reader = wt.datagrams.readable.getReader()
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      count++
      seen.add(new DataView(value.buffer, value.byteOffset).getUint32(0))
    }
  })().catch(() => {})
  const stream = await wt.createBidirectionalStream()
  const writer = stream.writable.getWriter()
  await writer.write(T.enc(command))
  await writer.close()
  await T.timeout(T.readAll(stream.readable), 10_000, 'burst done')
  await T.sleep(settleMs)
  wt.close()
  return { count, distinct: seen.size }
}

// Datagram writes resolve once queued and go to QUIC in a batch later; each must have been
// copied at write time, or a sender that refills one buffer sends the last content many times.
test('datagrams.writable copies each datagram: a refilled buffer still sends every content', { timeout: 60_000 }, async () => {
  const echo = await startEchoServer()
  try {
    const { count, distinct } = await env.run('same', receiveBurst, {
      url: echo.url('/burst'),
      hashHex: echo.hashHex,
      command: 'burst-reuse 200 100\n',
      settleMs: 1_000,
    })
    assert.ok(count >= 190, `the burst arrives (received ${count} of 200)`)
    assert.equal(distinct, count, 'every datagram carried its own sequence number')
  } finally {
    await echo.close()
  }
})

test('datagrams.outgoingHighWaterMark bounds what a send burst can queue', { timeout: 60_000 }, async () => {
  const received = {}
  for (const mark of [1, 4000]) {
    const echo = await startEchoServer({ datagrams: { outgoingHighWaterMark: mark } })
    try {
      const burst = await env.run('same', receiveBurst, {
        url: echo.url('/burst'),
        hashHex: echo.hashHex,
        command: 'burst 1000 1000\n',
        settleMs: 1_500,
      })
      received[mark] = burst.count
      const stats = await echo.sessions[0].getStats()
      assert.equal(stats.datagrams.sent, 1000, 'the application handed all 1000 to QUIC')
    } finally {
      await echo.close()
    }
  }
  assert.ok(received[1] < 500, `with a mark of 1 most of the burst is dropped (received ${received[1]})`)
  assert.ok(received[4000] >= 900, `with a mark of 4000 the burst arrives (received ${received[4000]})`)
})
