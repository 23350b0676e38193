// The echo scenarios every real-browser suite runs (chromium.test.mjs, firefox.test.mjs), written once.
//
// A scenario is { slug, name, timeout, page, check } and optionally origin ('same' or 'cross'), pageTimeout,
// setup, during, cleanup (slug names its path on the echo server, name the test):
// - page(arg) runs in the browser page. It is serialized, so it may use only its argument and the `T`
//   helpers of browser.mjs. arg is { url, hashHex } for a fresh path on the echo server
//   (support/echo-server.mjs), plus what setup(ctx) returns.
// - check(result, ctx) runs in Node with the page's result and asserts.
// - setup(ctx) runs before the page, during(ctx) while it runs, cleanup(ctx) always, last.
// ctx is { browser, t, echo, path } for the test; the hooks may keep their own state on it.
//
// Where browsers differ, a scenario asserts exactly what the driver's browser profile says it does. A
// profile has name, userAgent and datagrams, plus whichever of the other fields below the browser departs
// from the W3C text in (their defaults, in W3C below, are what the W3C text asks for):
// - userAgent: RegExp the page's navigator.userAgent must match.
// - datagrams: { burst, awaitEchoes } how the page paces its 100 datagrams: `burst` at a time, and either
//   waiting (up to 500 ms) for each burst's echoes before the next, or 10 ms between bursts.
// - resetTowardsPage: null, or { name, message } of the code-less error the page's read rejects with when
//   the server resets its sending side (W3C: WebTransportError, source 'stream', the code).
// - cancelSendsStopSending: whether readable.cancel(new WebTransportError({ streamErrorCode })) sends
//   STOP_SENDING with the code.
// - draining: whether the page has `wt.draining` (then it must resolve on a server drain).
// - stopSendingWhileWriting: null, or the name of the code-less error a page's write gets when the peer's
//   STOP_SENDING lands while that write is in flight (a write after it always gets the code).
// - errorMessageForm: whether `new WebTransportError(message, init)` (the W3C form) works, or throws a
//   TypeError as in browsers that take only the dictionary.
import { before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startEchoServer } from './echo-server.mjs'
import { withTimeout } from './browser.mjs'

const W3C = { resetTowardsPage: null, cancelSendsStopSending: true, draining: true, stopSendingWhileWriting: null, errorMessageForm: true }

/** Stream error codes sent both ways: the lowest, a small one, and the largest one byte holds. */
const CODES = [0, 7, 255]

/**
 * The suite of a driver: registers before/after hooks that start the echo server and `startEnv()` (a
 * browser env of browser.mjs's shape), and returns { scenarios, run(scenario, t) } for the driver's loop.
 */
export function echoSuite(profile, startEnv) {
  const browser = { ...W3C, ...profile }
  let echo
  let env
  before(async () => {
    echo = await startEchoServer()
    env = await startEnv()
  })
  after(async () => {
    // Browser first: its sessions go away, then the server can drain quickly.
    await env?.close()
    await withTimeout(echo?.close() ?? Promise.resolve(), 10_000, 'closing the echo server')
  })
  return {
    scenarios: echoScenarios(browser),
    async run(scenario, t) {
      const ctx = { browser, t, echo, path: `/echo/${scenario.slug}-${randomUUID()}` }
      try {
        const extra = await scenario.setup?.(ctx)
        const arg = { url: ctx.echo.url(ctx.path), hashHex: ctx.echo.hashHex, ...extra }
        const running = env.run(scenario.origin ?? 'same', scenario.page, arg, { label: scenario.name, timeout: scenario.pageTimeout })
        running.catch(() => {})
        await scenario.during?.(ctx)
        await scenario.check(await running, ctx)
      } finally {
        await scenario.cleanup?.(ctx)
      }
    },
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function findSession(echo, path, ms = 5_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const session = echo.sessions.find((s) => s.request?.path === path)
    if (session) return session
    if (Date.now() > deadline) {
      const seen = echo.sessions.map((s) => s.request?.path)
      throw new Error(`no server session for ${path} (sessions seen: ${JSON.stringify(seen)})`)
    }
    await sleep(20)
  }
}

/** Asserts that the server's session for ctx.path closed with this code and reason. */
async function assertServerClosed(ctx, closeCode, reason, ms = 10_000) {
  const session = await findSession(ctx.echo, ctx.path)
  const closed = await withTimeout(session.closed, ms, 'server session.closed')
  assert.deepEqual({ closeCode: closed.closeCode, reason: closed.reason }, { closeCode, reason })
}

/** The bytes the page sent and got back (base64 in the result) are the same. */
function assertEchoed(result) {
  const sent = Buffer.from(result.sent, 'base64')
  const received = Buffer.from(result.received, 'base64')
  assert.equal(received.length, sent.length)
  assert.ok(received.equals(sent), 'echoed bytes differ from the bytes sent')
}

/** A stream error the page saw: a WebTransportError from the stream with this code. */
function assertStreamError(error, code, what) {
  assert.ok(error, `${what}: no error`)
  assert.doesNotMatch(error.message ?? '', /page timeout/, `${what}: neither resolved nor rejected`)
  assert.deepEqual({ name: error.name, source: error.source, streamErrorCode: error.streamErrorCode }, { name: 'WebTransportError', source: 'stream', streamErrorCode: code }, `${what}: ${JSON.stringify(error)}`)
}

const expectedDatagrams = Array.from({ length: 100 }, (_, i) => `datagram-${String(i).padStart(3, '0')}-` + 'x'.repeat(100))

function echoScenarios(browser) {
  return [
    payloadEcho(browser, 'bidi'),
    {
      slug: 'server-streams',
      name: 'server-opened bidirectional and unidirectional streams reach the page',
      timeout: 30_000,
      page: async ({ url, hashHex }) => {
        const wt = await T.open(url, hashHex)
        const command = async (line) => T.dec(await T.exchange(wt, T.enc(line), 10_000, `reply to ${JSON.stringify(line)}`))
        const next = (streams, what) => T.timeout(streams.getReader().read(), 10_000, what)
        const bidiReply = await command('open-bidi\n')
        const bidi = await next(wt.incomingBidirectionalStreams, 'incoming bidirectional stream')
        const bidiText = bidi.done ? null : T.dec(await T.timeout(T.readAll(bidi.value.readable), 10_000, 'server bidi data'))
        const uniReply = await command('open-uni\n')
        const uni = await next(wt.incomingUnidirectionalStreams, 'incoming unidirectional stream')
        const uniText = uni.done ? null : T.dec(await T.timeout(T.readAll(uni.value), 10_000, 'server uni data'))
        wt.close()
        return { bidiReply, bidiText, uniReply, uniText }
      },
      check(result) {
        assert.equal(result.bidiText, 'server bidi')
        assert.equal(result.uniText, 'server uni')
        // The command streams themselves are finished without data.
        assert.equal(result.bidiReply, '')
        assert.equal(result.uniReply, '')
      },
    },
    payloadEcho(browser, 'uni'),
    {
      slug: 'datagrams',
      name: `100 datagrams echoed (bursts of ${browser.datagrams.burst}${browser.datagrams.awaitEchoes ? ', each waiting for its echoes' : ''})`,
      timeout: 60_000,
      pageTimeout: 45_000,
      setup: () => browser.datagrams,
      page: async ({ url, hashHex, burst, awaitEchoes }) => {
        const wt = await T.open(url, hashHex)
        const name = (i) => `datagram-${String(i).padStart(3, '0')}-` + 'x'.repeat(100)
        const received = new Set()
        const unexpected = []
        let readError = null
        let arrived = () => {}
        const reader = wt.datagrams.readable.getReader()
        const reading = (async () => {
          try {
            for (;;) {
              const { value, done } = await reader.read()
              if (done) return
              const text = T.dec(value)
              if (/^datagram-\d{3}-x{100}$/.test(text)) received.add(text)
              else unexpected.push(text.slice(0, 64))
              arrived()
            }
          } catch (err) {
            readError = T.describeError(err)
          }
        })()
        const waitForEchoes = async (ids, ms) => {
          const until = Date.now() + ms
          while (!ids.every((i) => received.has(name(i))) && Date.now() < until) {
            await Promise.race([new Promise((resolve) => (arrived = resolve)), T.sleep(20)])
          }
        }
        const writer = wt.datagrams.writable.getWriter()
        const everSent = new Set()
        let sent = 0
        let resent = 0
        let passes = 0
        // Bursts of `burst`: with awaitEchoes each waits (up to 500 ms) for its echoes before the next, so
        // the page's incoming queue never holds more than a burst; otherwise they go 10 ms apart and the
        // pass then waits for stragglers. Datagrams are unreliable: what did not come back is sent again in a
        // later pass.
        const deadline = Date.now() + 30_000
        while (received.size < 100 && passes < 30 && Date.now() < deadline) {
          passes++
          const missing = []
          for (let i = 0; i < 100; i++) if (!received.has(name(i))) missing.push(i)
          for (let k = 0; k < missing.length && Date.now() < deadline; k += burst) {
            const ids = missing.slice(k, k + burst)
            for (const i of ids) {
              await writer.ready
              writer.write(T.enc(name(i))).catch(() => {})
              sent++
              if (everSent.has(i)) resent++
              everSent.add(i)
            }
            if (awaitEchoes) await waitForEchoes(ids, 500)
            else await T.sleep(10)
          }
          if (!awaitEchoes) await waitForEchoes(missing, 300 + passes * 100)
        }
        const maxDatagramSize = wt.datagrams.maxDatagramSize
        wt.close()
        await Promise.race([reading, T.sleep(1000)])
        return { received: [...received].sort(), unexpected, sent, resent, passes, readError, maxDatagramSize }
      },
      check(result, { t }) {
        assert.deepEqual(result.unexpected, [], 'datagrams that were never sent came back')
        assert.deepEqual(
          result.received,
          expectedDatagrams,
          `got ${result.received.length}/100 after ${result.passes} passes, ${result.sent} sent (${result.resent} resent)`,
        )
        assert.ok(result.maxDatagramSize >= 113, `maxDatagramSize ${result.maxDatagramSize}`)
        t.diagnostic(`${result.sent} sent (${result.resent} resent) in ${result.passes} passes; maxDatagramSize ${result.maxDatagramSize}`)
      },
    },
    {
      slug: 'bulk',
      name: '10 MB over one bidirectional stream, byte-exact',
      timeout: 120_000,
      pageTimeout: 100_000,
      setup: () => ({ total: 10 * 1024 * 1024 }),
      page: async ({ url, hashHex, total }) => {
        const wt = await T.open(url, hashHex)
        const seed = 0x1234
        const chunkSize = 64 * 1024
        const started = performance.now()
        const stream = await wt.createBidirectionalStream()
        // Compare every received byte with the byte sent at that position (the pattern depends on the
        // position, so reordered, duplicated or lost chunks are caught).
        const reading = (async () => {
          const reader = stream.readable.getReader()
          let position = 0
          let mismatchAt = -1
          let checksum = 0
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            for (let i = 0; i < value.length; i++) {
              const b = value[i]
              if (mismatchAt < 0 && b !== T.patternByte(position + i, seed)) mismatchAt = position + i
              checksum = (Math.imul(checksum, 31) + b) | 0
            }
            position += value.length
          }
          return { received: position, mismatchAt, checksum }
        })()
        const writing = (async () => {
          const writer = stream.writable.getWriter()
          let checksum = 0
          for (let offset = 0; offset < total; offset += chunkSize) {
            const chunk = T.pattern(Math.min(chunkSize, total - offset), seed, offset)
            for (let i = 0; i < chunk.length; i++) checksum = (Math.imul(checksum, 31) + chunk[i]) | 0
            await writer.write(chunk)
          }
          await writer.close()
          return { sent: total, checksum }
        })()
        const [w, r] = await T.timeout(Promise.all([writing, reading]), 90_000, '10 MB transfer')
        const ms = performance.now() - started
        wt.close()
        return { ...r, sent: w.sent, sentChecksum: w.checksum, ms }
      },
      check(result, { t }) {
        const total = 10 * 1024 * 1024
        assert.equal(result.sent, total)
        assert.equal(result.received, total)
        assert.equal(result.mismatchAt, -1, `first differing byte at ${result.mismatchAt}`)
        assert.equal(result.checksum, result.sentChecksum)
        t.diagnostic(`10 MB echoed in ${Math.round(result.ms)} ms`)
      },
    },
    {
      slug: 'close-from-page',
      name: 'session closed by the page: the server sees the code and reason',
      timeout: 30_000,
      page: async ({ url, hashHex }) => {
        const wt = await T.open(url, hashHex)
        // Make sure the session is in use on both sides before closing it.
        const echoed = T.dec(await T.exchange(wt, T.enc('ping'), 10_000, 'echo'))
        wt.close({ closeCode: 4000, reason: 'bye from page' })
        try {
          const closed = await T.timeout(wt.closed, 10_000, 'wt.closed')
          return { echoed, closed: { closeCode: closed.closeCode, reason: closed.reason } }
        } catch (err) {
          return { echoed, closedRejected: T.describeError(err) }
        }
      },
      async check(result, ctx) {
        assert.equal(result.echoed, 'ping')
        assert.equal(result.closedRejected, undefined, `wt.closed rejected: ${JSON.stringify(result.closedRejected)}`)
        assert.deepEqual(result.closed, { closeCode: 4000, reason: 'bye from page' })
        await assertServerClosed(ctx, 4000, 'bye from page')
      },
    },
    {
      slug: 'close-from-server',
      name: 'session closed by the server: the page sees the code and reason',
      timeout: 30_000,
      page: async ({ url, hashHex }) => {
        const wt = await T.open(url, hashHex)
        const writer = (await wt.createBidirectionalStream()).writable.getWriter()
        writer.write(T.enc('close 4001 bye from server\n')).catch(() => {})
        try {
          const closed = await T.timeout(wt.closed, 10_000, 'wt.closed')
          return { closeCode: closed.closeCode, reason: closed.reason }
        } catch (err) {
          return { closedRejected: T.describeError(err) }
        }
      },
      async check(result, ctx) {
        // wt.closed rejects ('Connection lost.') when the close is not clean, e.g. when the server stops
        // its reading side of the CONNECT stream or closes the connection right after the close capsule.
        assert.equal(result.closedRejected, undefined, `wt.closed rejected: ${JSON.stringify(result.closedRejected)}`)
        assert.deepEqual(result, { closeCode: 4001, reason: 'bye from server' })
        await assertServerClosed(ctx, 4001, 'bye from server')
      },
    },
    {
      slug: 'cross-origin',
      name: 'a cross-origin page is refused by the default origin check',
      timeout: 30_000,
      origin: 'cross',
      setup(ctx) {
        ctx.emitted = []
        ctx.onSession = (session) => ctx.emitted.push(session.request?.path)
        ctx.echo.server.on('session', ctx.onSession)
      },
      page: async ({ url, hashHex }) => {
        const wt = T.connect(url, hashHex)
        const error = await T.failure(wt.ready, 10_000, 'wt.ready')
        if (!error) wt.close()
        return { origin: location.origin, ready: !error, error }
      },
      async check(result, ctx) {
        assert.match(result.origin, /^http:\/\/localhost:\d+$/)
        assert.equal(result.ready, false, 'wt.ready resolved for a cross-origin page')
        assert.doesNotMatch(result.error.message, /page timeout/, 'wt.ready neither resolved nor rejected')
        assert.equal(result.error.name, 'WebTransportError', JSON.stringify(result.error))
        await sleep(200)
        assert.deepEqual(ctx.emitted, [], "the server emitted 'session' for a refused request")
        assert.equal(ctx.echo.sessions.some((s) => s.request?.path === ctx.path), false)
      },
      cleanup: (ctx) => ctx.echo.server.off('session', ctx.onSession),
    },
    {
      slug: 'error-constructor',
      name: `WebTransportError takes the dictionary form${browser.errorMessageForm ? ' and the W3C (message, init) form' : ' only'}`,
      timeout: 30_000,
      page: async () => {
        const out = {}
        try {
          const e = new WebTransportError({ streamErrorCode: 7 })
          out.dictionary = { name: e.name, source: e.source, streamErrorCode: e.streamErrorCode }
        } catch (err) {
          out.dictionary = { threw: T.describeError(err) }
        }
        try {
          const e = new WebTransportError('with a message', { streamErrorCode: 7 })
          out.w3c = { name: e.name, message: e.message, source: e.source, streamErrorCode: e.streamErrorCode }
        } catch (err) {
          out.w3c = { threw: T.describeError(err) }
        }
        return out
      },
      check(result) {
        assert.deepEqual(result.dictionary, { name: 'WebTransportError', source: 'stream', streamErrorCode: 7 })
        // Firefox 153 and Chromium 156 alike refuse the W3C (message, init) form ("Argument 1 can't be
        // converted to a dictionary"), so the pages here use the dictionary form.
        if (browser.errorMessageForm) {
          assert.deepEqual(result.w3c, { name: 'WebTransportError', message: 'with a message', source: 'stream', streamErrorCode: 7 })
        } else {
          assert.equal(result.w3c.threw?.name, 'TypeError', `W3C form: ${JSON.stringify(result.w3c)}`)
        }
      },
    },
    ...CODES.flatMap((code) => [resetByServer(browser, code), interruptByPage(browser, 'abort', code)]),
    interruptByPage(browser, 'cancel', 7),
    ...CODES.map((code) => stopSendingFromServer(browser, code)),
    drain(browser),
  ]
}

/**
 * A greeting and a pseudo-random payload echoed whole: on one bidi stream (the reply on the same stream), or
 * on a uni stream (the echo server sends it back on a uni stream of its own).
 */
function payloadEcho(browser, kind) {
  const bidi = kind === 'bidi'
  return {
    slug: kind,
    name: `${bidi ? 'bidirectional' : 'unidirectional'} stream echo`,
    timeout: 30_000,
    setup: () => ({ kind, greeting: `${bidi ? 'hello' : 'uni'} from ${browser.name}\n`, size: bidi ? 50_000 : 30_000 }),
    page: async ({ url, hashHex, kind, greeting, size }) => {
      const wt = await T.open(url, hashHex)
      const payload = new Uint8Array([...T.enc(greeting), ...T.pattern(size, kind === 'bidi' ? 1 : 2)])
      const page = { origin: location.origin, ua: navigator.userAgent, sent: T.toBase64(payload) }
      if (kind === 'bidi') {
        const received = await T.exchange(wt, payload, 10_000, 'reading the echo')
        wt.close()
        return { ...page, received: T.toBase64(received) }
      }
      const incoming = wt.incomingUnidirectionalStreams.getReader().read()
      const writer = (await wt.createUnidirectionalStream()).getWriter()
      await writer.write(payload)
      await writer.close()
      const { value, done } = await T.timeout(incoming, 10_000, 'incoming unidirectional stream')
      if (done) return { ...page, error: 'incomingUnidirectionalStreams ended' }
      const received = await T.timeout(T.readAll(value), 10_000, 'reading the echo')
      wt.close()
      return { ...page, received: T.toBase64(received) }
    },
    check(result) {
      assert.equal(result.error, undefined)
      assert.match(result.origin, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.match(result.ua, browser.userAgent)
      assertEchoed(result)
    },
  }
}

/** The server resets its sending side of a stream (RESET_STREAM with `code`): the page's pending read rejects. */
function resetByServer(browser, code) {
  const codeless = browser.resetTowardsPage
  return {
    slug: `reset-${code}`,
    name: `stream reset by the server (code ${code}): the page's read rejects ${codeless ? `with a code-less ${codeless.name}` : 'with the code'}`,
    timeout: 30_000,
    setup: () => ({ code }),
    page: async ({ url, hashHex, code }) => {
      const wt = await T.open(url, hashHex)
      const stream = await wt.createBidirectionalStream()
      const pending = stream.readable.getReader().read()
      await stream.writable.getWriter().write(T.enc(`reset ${code}\n`))
      let read
      try {
        const { done } = await T.timeout(pending, 10_000, 'read after reset')
        read = { resolved: true, done }
      } catch (err) {
        read = T.describeError(err)
      }
      wt.close()
      return read
    },
    check(result, { t }) {
      assert.equal(result.resolved, undefined, `the read resolved: ${JSON.stringify(result)}`)
      t.diagnostic(`page read rejected with ${JSON.stringify(result)}`)
      if (codeless) {
        // The readable errors without the code (Chromium reports the code, so the server does send it).
        assert.doesNotMatch(result.message ?? '', /page timeout/, 'the read neither resolved nor rejected')
        assert.deepEqual({ name: result.name, message: result.message, streamErrorCode: result.streamErrorCode }, { ...codeless, streamErrorCode: undefined })
      } else {
        assertStreamError(result, code, "the page's read")
      }
    },
  }
}

/**
 * The page interrupts a stream the server is echoing on, once the first echo came back (so the server is
 * in its read loop): 'abort' resets the page's sending side (RESET_STREAM with `code`, the server's read
 * fails with it); 'cancel' stops its receiving side (STOP_SENDING with `code`, where the browser sends one:
 * the server's next echo write fails with it) and keeps writing.
 */
function interruptByPage(browser, how, code) {
  const abort = how === 'abort'
  const stopSending = { kind: 'write', streamErrorCode: code, source: 'stream', code: 'WT_ERR_STREAM_STOPPED' }
  return {
    slug: `${how}-${code}`,
    name: abort
      ? `stream reset by the page (code ${code}): the server's read fails with the code`
      : `readable.cancel(code ${code}) in the page: ${browser.cancelSendsStopSending ? "STOP_SENDING, the server's echo write fails with the code" : 'no STOP_SENDING, the server keeps echoing'}`,
    timeout: 30_000,
    setup(ctx) {
      ctx.from = ctx.echo.streamErrors.length
      return { code, how }
    },
    page: async ({ url, hashHex, code, how }) => {
      const wt = await T.open(url, hashHex)
      const stream = await wt.createBidirectionalStream()
      const reader = stream.readable.getReader()
      const writer = stream.writable.getWriter()
      await writer.write(T.enc(`data before the ${how}`))
      const first = await T.timeout(reader.read(), 10_000, 'first echo')
      const writeErrors = []
      if (how === 'abort') {
        await writer.abort(new WebTransportError({ streamErrorCode: code }))
        // Keep the session open until the server saw the reset (closing it would reset the stream again).
        await T.sleep(500)
      } else {
        await reader.cancel(new WebTransportError({ streamErrorCode: code }))
        // The server echoes whatever comes next; after a STOP_SENDING its writes fail.
        for (let i = 0; i < 25 && !writeErrors.length; i++) {
          const error = await T.failure(writer.write(T.pattern(20_000, i)), 5_000, `write ${i}`)
          if (error) writeErrors.push(error)
        }
        // Keep the session open a while, so a late STOP_SENDING would still be seen as a write error.
        await T.sleep(1_000)
      }
      wt.close()
      return { echoed: first.done ? null : T.dec(first.value), writeErrors }
    },
    async check(result, ctx) {
      assert.equal(result.echoed, `data before the ${how}`)
      if (abort) {
        const deadline = Date.now() + 5_000
        while (ctx.echo.streamErrors.length === ctx.from && Date.now() < deadline) await sleep(20)
        const errors = ctx.echo.streamErrors.slice(ctx.from)
        assert.ok(errors.length >= 1, 'the server recorded no stream error')
        assert.deepEqual(errors[0], { kind: 'read', streamErrorCode: code, source: 'stream', code: 'WT_ERR_STREAM_RESET' })
        return
      }
      // Only the page's receiving side is stopped: its own writes go on.
      assert.deepEqual(result.writeErrors, [], "the page's writes failed after its cancel")
      const session = await findSession(ctx.echo, ctx.path)
      await withTimeout(session.closed, 10_000, 'server session.closed')
      await sleep(200)
      const all = ctx.echo.streamErrors.slice(ctx.from)
      ctx.t.diagnostic(`server stream errors for this stream: ${JSON.stringify(all)}`)
      if (ctx.browser.cancelSendsStopSending) {
        assert.deepEqual(all.filter((e) => e.kind === 'write'), [stopSending])
      } else {
        // No STOP_SENDING: the server echoed all 500 kB sent after the cancel without a write error (the
        // browser reads and drops it); the stream only ends when the session closes, with a reset outside
        // the WebTransport code range (no streamErrorCode).
        assert.ok(all.length <= 1, JSON.stringify(all))
        assert.ok(all.every((e) => e.kind === 'read' && e.streamErrorCode === null), JSON.stringify(all))
      }
    },
  }
}

/**
 * The server stops reading a stream (STOP_SENDING with `code`). On the first stream the page waits for it
 * to land (its writable errors by itself), then writes: the write rejects with the code. On the second it
 * keeps writing while the STOP_SENDING is on its way: the first write to reject carries the code too, or
 * is the browser's documented code-less error for a write in flight (browser.stopSendingWhileWriting).
 */
function stopSendingFromServer(browser, code) {
  return {
    slug: `stop-${code}`,
    name: `STOP_SENDING from the server (code ${code}): the page's writes reject with the code`,
    timeout: 30_000,
    setup: () => ({ code }),
    page: async ({ url, hashHex, code }) => {
      const wt = await T.open(url, hashHex)
      const stopped = async () => {
        const writer = (await wt.createBidirectionalStream()).writable.getWriter()
        await writer.write(T.enc(`stop ${code}\n`))
        return writer
      }
      const landed = await stopped()
      const landedClosed = await T.failure(landed.closed, 10_000, 'writer.closed')
      const landedWrite = await T.failure(landed.write(T.enc('after the STOP_SENDING')), 5_000, 'a write after it')
      const racing = await stopped()
      let racingWrite = null
      for (let i = 0; i < 100 && !racingWrite; i++) {
        racingWrite = await T.failure(racing.write(T.pattern(1_000, i)), 5_000, `write ${i}`)
        if (!racingWrite) await T.sleep(20)
      }
      const racingClosed = await T.failure(racing.closed, 5_000, 'writer.closed')
      wt.close()
      return { landedClosed, landedWrite, racingWrite, racingClosed }
    },
    check(result, { t }) {
      assertStreamError(result.landedClosed, code, 'writer.closed once the STOP_SENDING landed')
      assertStreamError(result.landedWrite, code, 'a write after the STOP_SENDING landed')
      const { racingWrite, racingClosed } = result
      t.diagnostic(`writes racing the STOP_SENDING: ${JSON.stringify(racingWrite)}`)
      if (racingWrite?.name === browser.stopSendingWhileWriting) {
        // The documented code-less error for a write in flight; writer.closed rejects with the same.
        assert.equal(racingWrite.streamErrorCode, undefined, JSON.stringify(racingWrite))
        assert.equal(racingClosed?.name, racingWrite.name, `writer.closed: ${JSON.stringify(racingClosed)}`)
      } else {
        assertStreamError(racingWrite, code, 'a write racing the STOP_SENDING')
        assertStreamError(racingClosed, code, 'writer.closed after a write racing the STOP_SENDING')
      }
    },
  }
}

/** Node closes a server of its own (closeGrace 300 ms) while the page's session is open: a drain. */
function drain(browser) {
  return {
    slug: 'drain',
    name: `server close drains: the page sees the close code and reason${browser.draining ? ', after wt.draining' : ' (no wt.draining)'}`,
    timeout: 30_000,
    pageTimeout: 25_000,
    async setup(ctx) {
      // A server of its own: this test closes it. closeGrace keeps close() from waiting long for the session.
      ctx.echo = ctx.drainEcho = await startEchoServer({ closeGrace: 300 })
    },
    page: async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      const drainingType = typeof wt.draining
      let drained = null
      wt.draining?.then(
        () => (drained = 'resolved'),
        () => (drained = 'rejected'),
      )
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      // Make sure the session is in use on both sides before Node closes the server.
      const echoed = T.dec(await T.exchange(wt, T.enc('ping'), 10_000, 'echo'))
      let closed
      try {
        const c = await T.timeout(wt.closed, 15_000, 'wt.closed')
        closed = { closeCode: c.closeCode, reason: c.reason }
      } catch (err) {
        closed = { rejected: T.describeError(err) }
      }
      await T.sleep(0)
      return { echoed, drainingType, drained, closed }
    },
    async during(ctx) {
      const session = await findSession(ctx.echo, ctx.path, 10_000)
      await withTimeout(session.ready, 5_000, 'server session.ready')
      await sleep(500) // let the page's ping round-trip finish first
      ctx.serverClosed = withTimeout(ctx.echo.server.close({ closeCode: 4002, reason: 'drain' }), 10_000, 'server.close({ closeCode: 4002 })')
      ctx.serverClosed.catch(() => {})
    },
    async check(result, ctx) {
      await ctx.serverClosed
      ctx.t.diagnostic(`page: ${JSON.stringify(result)}`)
      assert.equal(result.echoed, 'ping')
      if (browser.draining) {
        assert.equal(result.drained, 'resolved', 'wt.draining did not resolve')
      } else {
        assert.equal(result.drainingType, 'undefined', 'the browser has wt.draining now: update its profile')
        assert.equal(result.drained, null)
      }
      assert.deepEqual(result.closed, { closeCode: 4002, reason: 'drain' })
      await assertServerClosed(ctx, 4002, 'drain', 5_000)
    },
    async cleanup(ctx) {
      if (ctx.drainEcho) await withTimeout(ctx.drainEcho.close(), 10_000, 'closing the drain echo server')
    },
  }
}
