// Protocol surface in headless Chromium: subprotocol negotiation, refusals seen as a failed
// `ready`, stream reset / stop-sending codes both ways, and drain on server close.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { Server, generateCertificate } from '../index.js'
import { startEchoServer } from './support/echo-server.mjs'
import { startBrowserEnv, withTimeout } from './support/browser.mjs'

let echo
let env

before(async () => {
  echo = await startEchoServer({
    protocols: ['chat-v2', 'chat-v1'],
    onRequest: (request) => {
      if (request.path.startsWith('/forbidden')) return 403
      if (request.path.startsWith('/missing')) return { status: 404, headers: { 'x-why': 'no such room' } }
      if (request.path.startsWith('/pick-v1')) return { protocol: 'chat-v1' }
      return undefined
    },
  })
  env = await startBrowserEnv()
})

after(async () => {
  await env?.close()
  await withTimeout(echo?.close() ?? Promise.resolve(), 10_000, 'closing the echo server')
})

const path = (name) => `/${name}/${randomUUID()}`

async function openAndReport({ url, hashHex, protocols }) {
  const wt = T.connect(url, hashHex, protocols ? { protocols } : {})
  try {
    await T.timeout(wt.ready, 10_000, 'wt.ready')
  } catch (error) {
    return { ready: false, error: String(error) }
  }
  const protocol = wt.protocol
  wt.close()
  return { ready: true, protocol }
}

test('wt.protocol is the server-preferred protocol the page offered', { timeout: 30_000 }, async () => {
  const offered = await env.run('same', openAndReport, { url: echo.url(path('chat')), hashHex: echo.hashHex, protocols: ['chat-v1', 'chat-v2'] })
  assert.deepEqual(offered, { ready: true, protocol: 'chat-v2' })
  const chosen = await env.run('same', openAndReport, { url: echo.url(path('pick-v1')), hashHex: echo.hashHex, protocols: ['chat-v1', 'chat-v2'] })
  assert.deepEqual(chosen, { ready: true, protocol: 'chat-v1' }, 'onRequest chose chat-v1')
  const none = await env.run('same', openAndReport, { url: echo.url(path('chat')), hashHex: echo.hashHex, protocols: ['other'] })
  assert.deepEqual(none, { ready: true, protocol: '' }, 'no match opens the session without a protocol')
  const session = echo.sessions.find((s) => s.request.protocols.includes('other'))
  assert.equal(session.protocol, '')
})

test('403 and 404 from onRequest are a failed ready in the page, and no session', { timeout: 30_000 }, async () => {
  const before = echo.sessions.length
  const forbidden = await env.run('same', openAndReport, { url: echo.url(path('forbidden')), hashHex: echo.hashHex })
  assert.equal(forbidden.ready, false)
  const missing = await env.run('same', openAndReport, { url: echo.url(path('missing')), hashHex: echo.hashHex })
  assert.equal(missing.ready, false)
  assert.equal(echo.sessions.length, before)
})

test('maxSessions: the session beyond the limit gets 429, a failed ready', { timeout: 30_000 }, async () => {
  const limited = await startEchoServer({ maxSessions: 1 })
  try {
    const result = await env.run(
      'same',
      async ({ url, hashHex }) => {
        const first = T.connect(url, hashHex)
        await T.timeout(first.ready, 10_000, 'first ready')
        const second = T.connect(url, hashHex)
        let secondReady = true
        try {
          await T.timeout(second.ready, 10_000, 'second ready')
        } catch {
          secondReady = false
        }
        first.close()
        await T.timeout(first.closed, 10_000, 'first closed')
        await T.sleep(100)
        const third = T.connect(url, hashHex)
        let thirdReady = true
        try {
          await T.timeout(third.ready, 10_000, 'third ready')
        } catch {
          thirdReady = false
        }
        third.close()
        return { secondReady, thirdReady }
      },
      { url: limited.url('/limited'), hashHex: limited.hashHex },
    )
    assert.deepEqual(result, { secondReady: false, thirdReady: true }, 'refused while full, accepted once a slot is free')
  } finally {
    await limited.close()
  }
})

test('stream reset and stop-sending codes 0, 7 and 255 round-trip both ways', { timeout: 60_000 }, async () => {
  const before = echo.streamErrors.length
  const result = await env.run(
    'same',
    async ({ url, hashHex, codes }) => {
      const wt = T.connect(url, hashHex)
      await T.timeout(wt.ready, 10_000, 'wt.ready')
      const out = { serverReset: [], serverStop: [] }
      for (const code of codes) {
        // The server resets its sending side with `code`: the page's read rejects with it.
        const a = await wt.createBidirectionalStream()
        const aw = a.writable.getWriter()
        await aw.write(T.enc(`reset ${code}\n`))
        try {
          await T.timeout(T.readAll(a.readable), 10_000, 'read after reset')
          out.serverReset.push('no error')
        } catch (e) {
          out.serverReset.push({ name: e.name, source: e.source, code: e.streamErrorCode })
        }
        // The page resets its sending side: the server's read rejects with the code.
        const b = await wt.createBidirectionalStream()
        const bw = b.writable.getWriter()
        await bw.write(T.enc('some data'))
        await T.sleep(50)
        await bw.abort(new WebTransportError({ streamErrorCode: code }))
        // The page stops reading: the server's write rejects with the code.
        const c = await wt.createBidirectionalStream()
        const cw = c.writable.getWriter()
        await c.readable.cancel(new WebTransportError({ streamErrorCode: code }))
        await cw.write(T.enc('echo this'))
        // The server stops reading with `code`: the page's writes reject with it.
        const d = await wt.createBidirectionalStream()
        const dw = d.writable.getWriter()
        await dw.write(T.enc(`stop ${code}\n`))
        try {
          for (let i = 0; i < 50; i++) {
            await dw.write(new Uint8Array(1000))
            await T.sleep(20)
          }
          out.serverStop.push('no error')
        } catch (e) {
          out.serverStop.push({ name: e.name, source: e.source, code: e.streamErrorCode })
        }
      }
      await T.sleep(300)
      wt.close()
      return out
    },
    { url: echo.url(path('codes')), hashHex: echo.hashHex, codes: [0, 7, 255] },
    { timeout: 50_000 },
  )
  for (const [i, code] of [0, 7, 255].entries()) {
    assert.deepEqual(result.serverReset[i], { name: 'WebTransportError', source: 'stream', code }, `server reset ${code}: ${JSON.stringify(result)}`)
    // Chromium surfaces a peer's STOP_SENDING on the next write, and depending on timing as a
    // WebTransportError with the code or as a NetworkError without one; it must reject, and a
    // code it does carry must be the one sent.
    const stop = result.serverStop[i]
    assert.notEqual(stop, 'no error', `server stop ${code}: the page's writes kept succeeding`)
    if (stop.name === 'WebTransportError') assert.deepEqual(stop, { name: 'WebTransportError', source: 'stream', code }, `server stop ${code}`)
    else assert.equal(stop.name, 'NetworkError', `server stop ${code}: ${JSON.stringify(stop)}`)
  }
  const seen = echo.streamErrors.slice(before)
  for (const code of [0, 7, 255]) {
    assert.ok(
      seen.some((e) => e.kind === 'read' && e.streamErrorCode === code && e.code === 'WT_ERR_STREAM_RESET' && e.source === 'stream'),
      `the server saw the page's reset ${code}: ${JSON.stringify(seen)}`,
    )
    assert.ok(
      seen.some((e) => e.kind === 'write' && e.streamErrorCode === code && e.code === 'WT_ERR_STREAM_STOPPED'),
      `the server saw the page's stop-sending ${code}: ${JSON.stringify(seen)}`,
    )
  }
})

test('server close drains: the page sees draining, then closed with the code; its data arrives whole', { timeout: 60_000 }, async () => {
  const { cert, key, hash } = generateCertificate({ hostnames: ['127.0.0.1'], days: 3 })
  const server = new Server({ port: 0, host: '127.0.0.1', cert, key, closeGrace: 3_000 })
  const received = []
  const serverDraining = []
  let closing
  server.on('session', async (session) => {
    session.closed.catch(() => {})
    session.draining.then(() => serverDraining.push(true))
    for await (const readable of session.incomingUnidirectionalStreams) {
      // Close the server as soon as the page's data starts arriving; draining must let it finish.
      closing ??= server.close({ closeCode: 4005, reason: 'maintenance' })
      let total = 0
      let sum = 0
      for await (const chunk of readable) {
        total += chunk.byteLength
        for (const byte of chunk) sum = (sum + byte) % 65521
      }
      received.push({ total, sum })
      // The application is done with the session: it closes itself before the grace ends.
      session.close({ closeCode: 4005, reason: 'maintenance' })
    }
  })
  await server.ready
  const hashHex = Buffer.from(hash.value).toString('hex')
  try {
    const result = await env.run(
      'same',
      async ({ url, hashHex, size }) => {
        const wt = T.connect(url, hashHex)
        await T.timeout(wt.ready, 10_000, 'wt.ready')
        const started = performance.now()
        let drainedAt = null
        wt.draining?.then(() => (drainedAt = performance.now() - started))
        const data = T.pattern(size, 9)
        let sum = 0
        for (const byte of data) sum = (sum + byte) % 65521
        const writer = (await wt.createUnidirectionalStream()).getWriter()
        await writer.write(data)
        await writer.close()
        const closed = await T.timeout(wt.closed, 20_000, 'wt.closed')
        const closedAt = performance.now() - started
        await T.sleep(50)
        return { closed, drainedAt, closedAt, hasDraining: 'draining' in wt, sum }
      },
      { url: `https://127.0.0.1:${server.address().port}/drain`, hashHex, size: 2_000_000 },
      { timeout: 40_000 },
    )
    await closing
    assert.deepEqual(result.closed, { closeCode: 4005, reason: 'maintenance' })
    // Chromium 156 has no `draining` attribute (Firefox and the raw-client test cover the
    // DRAIN capsule); where a browser has it, it must have resolved before `closed`.
    if (result.hasDraining) {
      assert.ok(result.drainedAt !== null && result.drainedAt <= result.closedAt, `wt.draining resolved first: ${JSON.stringify(result)}`)
    }
    assert.deepEqual(serverDraining, [true], 'the server-side session.draining resolved')
    assert.deepEqual(received, [{ total: 2_000_000, sum: result.sum }], 'every byte the page wrote arrived')
  } finally {
    await server.close()
  }
})
