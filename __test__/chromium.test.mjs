// Chromium (headless, through playwright-core) against the echo server: the real browser WebTransport
// client talking to webtransport-napi. Needs /usr/bin/chromium (or CHROMIUM_PATH).
//
// The scenarios are support/echo-scenarios.mjs's, shared with firefox.test.mjs; this profile says where
// Chromium 156 departs from the W3C text, and the scenarios assert exactly that.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startBrowserEnv, withTimeout } from './support/browser.mjs'
import { echoSuite } from './support/echo-scenarios.mjs'
import { startEchoServer } from './support/echo-server.mjs'

const CHROMIUM = {
  name: 'chromium',
  userAgent: /HeadlessChrome\//,
  // Chromium queues incoming datagrams generously: bursts of 10, 10 ms apart, without waiting for echoes.
  datagrams: { burst: 10, awaitEchoes: false },
  // new WebTransportError(message, init) throws a TypeError: only the dictionary form is taken.
  errorMessageForm: false,
  // A write in flight when the server's STOP_SENDING lands rejects with a NetworkError without the code
  // (chromium-protocol.test.mjs meets it too); a write after it gets the WebTransportError with the code.
  stopSendingWhileWriting: 'NetworkError',
  // wt.draining is not implemented: the page sees the drain only as `closed` with the code.
  draining: false,
}

const suite = echoSuite(CHROMIUM, startBrowserEnv)
for (const scenario of suite.scenarios) test(scenario.name, { timeout: scenario.timeout }, (t) => suite.run(scenario, t))

// session.drain() as a page sees it. Chromium 156 has `wt.draining` only behind
// --enable-experimental-web-platform-features (the profile above runs without it), so this test
// has a browser of its own with that flag, and its own echo server.
test('session.drain(): wt.draining resolves in the page, then a new stream still echoes', { timeout: 60_000 }, async () => {
  const echo = await startEchoServer()
  let env
  try {
    env = await startBrowserEnv({ args: ['--enable-experimental-web-platform-features'] })
    const path = `/drain/${randomUUID()}`
    const result = await env.run(
      'same',
      async ({ url, hashHex }) => {
        const wt = T.connect(url, hashHex)
        const drainingType = typeof wt.draining
        let drained = false
        wt.draining?.then(() => (drained = true))
        await T.timeout(wt.ready, 10_000, 'wt.ready')
        const before = T.dec(await T.exchange(wt, T.enc('before'), 10_000, 'echo before the drain'))
        await T.sleep(200)
        const drainedEarly = drained
        // The server drains when asked on a stream (echo-server's "drain" command).
        const answer = T.dec(await T.exchange(wt, T.enc('drain\n'), 10_000, 'the drain command'))
        await T.timeout(wt.draining, 10_000, 'wt.draining')
        const after = T.dec(await T.exchange(wt, T.enc('after the drain'), 10_000, 'echo after the drain'))
        wt.close({ closeCode: 5, reason: 'drained' })
        await T.timeout(wt.closed, 10_000, 'wt.closed')
        return { drainingType, before, drainedEarly, answer, after }
      },
      { url: echo.url(path), hashHex: echo.hashHex },
    )
    assert.deepEqual(result, {
      drainingType: 'object',
      before: 'before',
      drainedEarly: false,
      answer: 'draining',
      after: 'after the drain',
    })
    const session = echo.sessions.find((s) => s.request.path === path)
    assert.ok(session, 'the server saw the session')
    // A browser speaks draft-02: its token is `webtransport` (draft-15 clients send webtransport-h3).
    assert.equal(session.request.protocol, 'webtransport')
    assert.equal(session.request.method, 'CONNECT')
    await withTimeout(session.draining, 1_000, 'server session.draining')
    assert.deepEqual(await withTimeout(session.closed, 10_000, 'server session.closed'), { closeCode: 5, reason: 'drained' })
    // After the end: nothing to send, no throw.
    session.drain()
  } finally {
    await env?.close()
    await withTimeout(echo.close(), 10_000, 'closing the drain echo server')
  }
})
