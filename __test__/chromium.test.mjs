// Chromium (headless, through playwright-core) against the echo server: the real browser WebTransport
// client talking to webtransport-napi. Needs /usr/bin/chromium (or CHROMIUM_PATH).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startEchoServer } from './support/echo-server.mjs'
import { startBrowserEnv, withTimeout } from './support/browser.mjs'

let echo
let env

before(async () => {
  echo = await startEchoServer()
  env = await startBrowserEnv()
})

after(async () => {
  // Browser first: its sessions go away, then the server can drain quickly.
  await env?.close()
  await withTimeout(echo?.close() ?? Promise.resolve(), 10_000, 'closing the echo server')
})

const uniquePath = (name) => `/echo/${name}-${randomUUID()}`

async function findSession(path, ms = 5_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const session = echo.sessions.find((s) => s.request?.path === path)
    if (session) return session
    if (Date.now() > deadline) {
      const seen = echo.sessions.map((s) => s.request?.path)
      throw new Error(`no server session for ${path} (sessions seen: ${JSON.stringify(seen)})`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('bidirectional stream echo', { timeout: 30_000 }, async () => {
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      const payload = new Uint8Array([...T.enc('hello from chromium\n'), ...T.pattern(50_000, 1)])
      const stream = await wt.createBidirectionalStream()
      const reading = T.readAll(stream.readable)
      const writer = stream.writable.getWriter()
      await writer.write(payload)
      await writer.close()
      const received = await T.timeout(reading, 10_000, 'reading the echo')
      wt.close()
      return { origin: location.origin, sent: T.toBase64(payload), received: T.toBase64(received) }
    },
    { url: echo.url(uniquePath('bidi')), hashHex: echo.hashHex },
  )
  assert.match(result.origin, /^http:\/\/127\.0\.0\.1:\d+$/)
  const sent = Buffer.from(result.sent, 'base64')
  const received = Buffer.from(result.received, 'base64')
  assert.equal(received.length, sent.length)
  assert.ok(received.equals(sent), 'echoed bytes differ from the bytes sent')
})

test('server-opened bidirectional and unidirectional streams reach the page', { timeout: 30_000 }, async () => {
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      async function command(line) {
        const stream = await wt.createBidirectionalStream()
        const reply = T.readAll(stream.readable)
        const writer = stream.writable.getWriter()
        await writer.write(T.enc(line))
        await writer.close()
        return T.dec(await T.timeout(reply, 10_000, `reply to ${JSON.stringify(line)}`))
      }
      const bidiReply = await command('open-bidi\n')
      const { value: bidi, done: bidiDone } = await T.timeout(
        wt.incomingBidirectionalStreams.getReader().read(),
        10_000,
        'incoming bidirectional stream',
      )
      const bidiText = bidiDone ? null : T.dec(await T.timeout(T.readAll(bidi.readable), 10_000, 'server bidi data'))

      const uniReply = await command('open-uni\n')
      const { value: uni, done: uniDone } = await T.timeout(
        wt.incomingUnidirectionalStreams.getReader().read(),
        10_000,
        'incoming unidirectional stream',
      )
      const uniText = uniDone ? null : T.dec(await T.timeout(T.readAll(uni), 10_000, 'server uni data'))
      wt.close()
      return { bidiReply, bidiText, uniReply, uniText }
    },
    { url: echo.url(uniquePath('server-streams')), hashHex: echo.hashHex },
  )
  assert.equal(result.bidiText, 'server bidi')
  assert.equal(result.uniText, 'server uni')
  // The command streams themselves are finished without data.
  assert.equal(result.bidiReply, '')
  assert.equal(result.uniReply, '')
})

test('unidirectional stream echo', { timeout: 30_000 }, async () => {
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      const payload = new Uint8Array([...T.enc('uni from chromium\n'), ...T.pattern(30_000, 2)])
      const incoming = wt.incomingUnidirectionalStreams.getReader().read()
      const out = await wt.createUnidirectionalStream()
      const writer = out.getWriter()
      await writer.write(payload)
      await writer.close()
      const { value, done } = await T.timeout(incoming, 10_000, 'incoming unidirectional stream')
      if (done) return { error: 'incomingUnidirectionalStreams ended' }
      const received = await T.timeout(T.readAll(value), 10_000, 'reading the echo')
      wt.close()
      return { sent: T.toBase64(payload), received: T.toBase64(received) }
    },
    { url: echo.url(uniquePath('uni')), hashHex: echo.hashHex },
  )
  assert.equal(result.error, undefined)
  const sent = Buffer.from(result.sent, 'base64')
  const received = Buffer.from(result.received, 'base64')
  assert.equal(received.length, sent.length)
  assert.ok(received.equals(sent), 'echoed bytes differ from the bytes sent')
})

test('100 datagrams echoed', { timeout: 60_000 }, async () => {
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      const name = (i) => `datagram-${String(i).padStart(3, '0')}-` + 'x'.repeat(100)
      const received = new Set()
      const unexpected = []
      let readError = null
      const reader = wt.datagrams.readable.getReader()
      const reading = (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read()
            if (done) return
            const text = T.dec(value)
            if (/^datagram-\d{3}-x{100}$/.test(text)) received.add(text)
            else unexpected.push(text.slice(0, 64))
          }
        } catch (err) {
          readError = T.describeError(err)
        }
      })()
      const writer = wt.datagrams.writable.getWriter()
      let sent = 0
      let rounds = 0
      // A few bursts of 10, then resend whatever did not come back (datagrams are unreliable).
      for (; rounds < 30 && received.size < 100; rounds++) {
        const missing = []
        for (let i = 0; i < 100; i++) if (!received.has(name(i))) missing.push(i)
        for (let k = 0; k < missing.length; k += 10) {
          for (const i of missing.slice(k, k + 10)) {
            await writer.ready
            writer.write(T.enc(name(i))).catch(() => {})
            sent++
          }
          await T.sleep(10)
        }
        const until = Date.now() + 300 + rounds * 100
        while (received.size < 100 && Date.now() < until) await T.sleep(10)
      }
      const maxDatagramSize = wt.datagrams.maxDatagramSize
      wt.close()
      await Promise.race([reading, T.sleep(1000)])
      return { received: [...received].sort(), unexpected, sent, rounds, readError, maxDatagramSize }
    },
    { url: echo.url(uniquePath('datagrams')), hashHex: echo.hashHex },
    { timeout: 45_000 },
  )
  const expected = Array.from({ length: 100 }, (_, i) => `datagram-${String(i).padStart(3, '0')}-` + 'x'.repeat(100))
  assert.deepEqual(result.unexpected, [], 'datagrams that were never sent came back')
  assert.deepEqual(result.received, expected, `got ${result.received.length}/100 after ${result.rounds} rounds, ${result.sent} sent`)
})

test('10 MB over one bidirectional stream, byte-exact', { timeout: 120_000 }, async () => {
  const total = 10 * 1024 * 1024
  const result = await env.run(
    'same',
    async ({ url, hashHex, total }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
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
    { url: echo.url(uniquePath('bulk')), hashHex: echo.hashHex, total },
    { timeout: 100_000 },
  )
  assert.equal(result.sent, total)
  assert.equal(result.received, total)
  assert.equal(result.mismatchAt, -1, `first differing byte at ${result.mismatchAt}`)
  assert.equal(result.checksum, result.sentChecksum)
})

test('session closed by the page: the server sees the code and reason', { timeout: 30_000 }, async () => {
  const path = uniquePath('close-from-page')
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      // Make sure the session is in use on both sides before closing it.
      const stream = await wt.createBidirectionalStream()
      const reply = T.readAll(stream.readable)
      const writer = stream.writable.getWriter()
      await writer.write(T.enc('ping'))
      await writer.close()
      const echoed = T.dec(await T.timeout(reply, 10_000, 'echo'))
      wt.close({ closeCode: 4000, reason: 'bye from page' })
      const closed = await T.timeout(wt.closed, 10_000, 'wt.closed')
      return { echoed, closed: { closeCode: closed.closeCode, reason: closed.reason } }
    },
    { url: echo.url(path), hashHex: echo.hashHex },
  )
  assert.equal(result.echoed, 'ping')
  const session = await findSession(path)
  const closed = await withTimeout(session.closed, 10_000, 'server session.closed')
  assert.deepEqual({ closeCode: closed.closeCode, reason: closed.reason }, { closeCode: 4000, reason: 'bye from page' })
})

test('session closed by the server: the page sees the code and reason', { timeout: 30_000 }, async () => {
  const path = uniquePath('close-from-server')
  const result = await env.run(
    'same',
    async ({ url, hashHex }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      const stream = await wt.createBidirectionalStream()
      const writer = stream.writable.getWriter()
      writer.write(T.enc('close 4001 bye from server\n')).catch(() => {})
      try {
        const closed = await T.timeout(wt.closed, 10_000, 'wt.closed')
        return { closeCode: closed.closeCode, reason: closed.reason }
      } catch (err) {
        return { closedRejected: T.describeError(err) }
      }
    },
    { url: echo.url(path), hashHex: echo.hashHex },
  )
  // wt.closed rejects ('Connection lost.') when the close is not clean, e.g. when the server stops
  // its reading side of the CONNECT stream or closes the connection right after the close capsule.
  assert.equal(result.closedRejected, undefined, `wt.closed rejected: ${JSON.stringify(result.closedRejected)}`)
  assert.deepEqual(result, { closeCode: 4001, reason: 'bye from server' })
  const session = await findSession(path)
  const closed = await withTimeout(session.closed, 10_000, 'server session.closed')
  assert.deepEqual({ closeCode: closed.closeCode, reason: closed.reason }, { closeCode: 4001, reason: 'bye from server' })
})

test('a cross-origin page is refused by the default origin check', { timeout: 30_000 }, async () => {
  const path = uniquePath('cross-origin')
  const emitted = []
  const onSession = (session) => emitted.push(session.request?.path)
  echo.server.on('session', onSession)
  try {
    const result = await env.run(
      'cross',
      async ({ url, hashHex }) => {
        const wt = T.connect(url, hashHex)
        try {
          await T.timeout(wt.ready, 10_000, 'wt.ready')
          wt.close()
          return { origin: location.origin, ready: true }
        } catch (err) {
          return { origin: location.origin, ready: false, error: T.describeError(err) }
        }
      },
      { url: echo.url(path), hashHex: echo.hashHex },
    )
    assert.match(result.origin, /^http:\/\/localhost:\d+$/)
    assert.equal(result.ready, false, 'wt.ready resolved for a cross-origin page')
    assert.doesNotMatch(result.error.message, /page timeout/, 'wt.ready neither resolved nor rejected')
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.deepEqual(emitted, [], "the server emitted 'session' for a refused request")
    assert.equal(echo.sessions.some((s) => s.request?.path === path), false)
  } finally {
    echo.server.off('session', onSession)
  }
})
