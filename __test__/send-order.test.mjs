// sendOrder (W3C WebTransportSendStream.sendOrder) takes effect: two streams compete for one
// connection and the higher sendOrder finishes first, whichever of the two was written first.
//
// How the competition is set up, and why it is not a race: the client (tools/wt-client, on the
// wtransport crate) grants each stream an 8 MB window (--stream-window), so the server can queue
// all 4 MB of each stream in QUIC at once; the server hands both streams' data to QUIC in one
// synchronous turn, stream A first. From then on only QUIC's scheduler decides what goes on the
// wire, and it sends the higher priority first: A can only get ahead by what the network carries
// during one 4 MB copy in memory, a small part of A's 4 MB. Each case runs with the orders both
// ways round, so a test that passed whatever the orders were (A first, say, because it was
// written first) would fail one of them.
//
// Build the client first: cargo build --release -p wt-client (or set WT_CLIENT_BIN).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { Server, generateCertificate } from '../index.js'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

const BYTES = 4 * 1024 * 1024
const WINDOW = String(2 * BYTES)

let server
let handle

before(async () => {
  assertClientBuilt()
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  server.on('session', (session) => {
    session.closed.catch(() => {})
    serve(session).catch((error) => console.error('send-order server:', error))
  })
  await server.ready
  const { port } = server.address()
  handle = { url: (path) => `https://127.0.0.1:${port}${path}`, hashHex: Buffer.from(certificate.hash.value).toString('hex') }
})

after(() => server?.close())

/** The orders of streams A and B from the request path: `/uni?A=1&B=2`. */
function ordersOf(session) {
  const query = new URL(session.request.url).searchParams
  return { A: Number(query.get('A')), B: Number(query.get('B')) }
}

/** One 4 MB chunk starting with the stream's tag byte, which the client reports streams by. */
function payload(tag) {
  const bytes = new Uint8Array(BYTES)
  bytes[0] = tag.charCodeAt(0)
  return bytes
}

/**
 * Writes A's and B's whole payloads in one synchronous turn (A first), then finishes both. Each
 * write is taken by QUIC at once (the client's window allows it), so both are queued together.
 */
async function sendBoth(writers) {
  const written = [writers.A.write(payload('A')), writers.B.write(payload('B'))]
  written.push(writers.A.close(), writers.B.close())
  await Promise.all(written)
}

async function serve(session) {
  const orders = ordersOf(session)
  const { pathname } = new URL(session.request.url)
  if (pathname === '/uni') {
    // Server-opened streams: the order given when each is created.
    const a = await session.createUnidirectionalStream({ sendOrder: orders.A })
    const b = await session.createUnidirectionalStream({ sendOrder: orders.B })
    assert.equal(a.sendOrder, orders.A)
    await sendBoth({ A: a.getWriter(), B: b.getWriter() })
    return
  }
  if (pathname !== '/bidi') return
  // Client-opened streams, each sending its tag: the order is set on their writables after both
  // payloads are queued at order 0, so the setter must reorder data QUIC already holds. quinn
  // re-sorts a queued stream when it next sends from it, which a lowered order always gets to
  // (a raised one may wait behind the others: see the README), so the cases lower one stream.
  const incoming = session.incomingBidirectionalStreams.getReader()
  const streams = {}
  for (let i = 0; i < 2; i++) {
    const { value } = await incoming.read()
    const { value: tag } = await value.readable.getReader().read()
    streams[String.fromCharCode(tag[0])] = value.writable
  }
  assert.equal(streams.A.sendOrder, 0, 'default sendOrder')
  const writers = { A: streams.A.getWriter(), B: streams.B.getWriter() }
  const sent = sendBoth(writers)
  streams.A.sendOrder = orders.A
  streams.B.sendOrder = orders.B
  await sent
}

/** Runs the client's send-order scenario and returns the tags in the order they finished. */
async function finishingOrder(mode, orders) {
  const path = `/${mode}?A=${orders.A}&B=${orders.B}`
  const out = assertClientOk(
    await runWtClient(handle, ['send-order', mode], { path, timeoutMs: 30_000, extra: ['--stream-window', WINDOW] }),
  )
  assert.deepEqual(out.bytes, [BYTES, BYTES], 'both streams arrive whole')
  return out.finished
}

test('createUnidirectionalStream({ sendOrder }): the higher order finishes first, both ways round', async () => {
  assert.deepEqual(await finishingOrder('uni', { A: -1, B: 5 }), ['B', 'A'])
  assert.deepEqual(await finishingOrder('uni', { A: 5, B: -1 }), ['A', 'B'])
})

test('writable.sendOrder lowered on a client-opened stream with data queued lets the other overtake it', async () => {
  assert.deepEqual(await finishingOrder('bidi', { A: -1, B: 0 }), ['B', 'A'])
  assert.deepEqual(await finishingOrder('bidi', { A: 0, B: -1 }), ['A', 'B'])
})

test('sendOrder beyond the 32-bit range saturates (keeps its sign) rather than wrapping', async () => {
  // Wrapped as ToInt32 would, both would be 0 and tie; saturated they are i32's two ends.
  assert.deepEqual(await finishingOrder('uni', { A: -(2 ** 40), B: 2 ** 40 }), ['B', 'A'])
  assert.deepEqual(await finishingOrder('uni', { A: 2 ** 40, B: -(2 ** 40) }), ['A', 'B'])
})

test('sendOrder is validated: an integer, else TypeError WT_ERR_INVALID_OPTION', async () => {
  const checked = new Promise((resolve, reject) => {
    server.once('session', async (session) => {
      try {
        for (const bad of [1.5, NaN, Infinity, '1', 1n, null]) {
          await assert.rejects(session.createUnidirectionalStream({ sendOrder: bad }), {
            name: 'TypeError',
            code: 'WT_ERR_INVALID_OPTION',
          })
        }
        await assert.rejects(session.createBidirectionalStream(7), { name: 'TypeError', code: 'WT_ERR_INVALID_OPTION' })
        const { writable } = await session.createBidirectionalStream({ sendOrder: undefined })
        assert.equal(writable.sendOrder, 0)
        assert.throws(() => (writable.sendOrder = 0.5), { name: 'TypeError', code: 'WT_ERR_INVALID_OPTION' })
        assert.equal(writable.sendOrder, 0, 'a refused value changes nothing')
        writable.sendOrder = Number.MAX_SAFE_INTEGER
        assert.equal(writable.sendOrder, Number.MAX_SAFE_INTEGER, 'the value as set, as W3C keeps it')
        // After the stream is finished the setter still takes a value (there is nothing to reorder).
        await writable.close()
        writable.sendOrder = -3
        assert.equal(writable.sendOrder, -3)
        resolve()
      } catch (error) {
        reject(error)
      } finally {
        session.close()
      }
    })
  })
  // The session only needs to open; the client's scenario fails once the server closes it.
  const run = runWtClient(handle, ['server-streams'], { path: '/validate' })
  await checked
  await run
})
