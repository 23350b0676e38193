// When a stream's native halves go. A half holds a QUIC stream handle, and with it the whole
// connection's state, so it must go when the stream is over (read to its end, finished, failed,
// or its session ended), not when V8 collects the JS objects over it: in a process that has gone
// quiet that may be never (Node 24's V8 runs no idle-time GC, where Node 22's did after 8 s,
// which is all that made the live-counters test pass there). Here JS keeps every stream object
// for the whole test, so garbage collection cannot be what lets a half go.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Server, generateCertificate } from '../index.js'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

/** A server on 127.0.0.1 whose session handler is `serve(session, server)`. */
async function startServer(serve) {
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  const served = []
  server.on('session', (session) => {
    session.closed.catch(() => {})
    served.push(serve(session, server))
  })
  await server.ready
  return {
    server,
    served,
    url: () => `https://127.0.0.1:${server.address().port}/`,
    hashHex: Buffer.from(certificate.hash.value).toString('hex'),
  }
}

async function readAll(readable) {
  const reader = readable.getReader()
  const chunks = []
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    chunks.push(Buffer.from(value))
  }
  reader.releaseLock()
  return Buffer.concat(chunks)
}

async function writeAll(writable, data) {
  const writer = writable.getWriter()
  await writer.write(data)
  await writer.close()
  writer.releaseLock()
}

test('a stream read to its end and finished lets go of its native halves at once, its session still open', { timeout: 60_000 }, async () => {
  assertClientBuilt()
  const held = []
  const seen = []
  const wt = await startServer(async (session, server) => {
    let ended = false
    session.closed.then(
      () => (ended = true),
      () => (ended = true),
    )
    const datagram = (async () => {
      const { value } = await session.datagrams.readable.getReader().read()
      await session.datagrams.writable.getWriter().write(value)
    })()
    // Streams are taken one at a time, each after the last one's count: until JS asks for it, a
    // client's new stream waits in QUIC's queue, with no half made for it yet.
    const bidi = session.incomingBidirectionalStreams.getReader()
    for (let i = 0; i < 5; i++) {
      const { value: stream } = await bidi.read()
      const data = await readAll(stream.readable)
      await writeAll(stream.writable, data)
      held.push(stream)
      seen.push({ stream: `bidi echo ${i}`, halves: server.counters().streamHalves, sessionEnded: ended })
    }
    const { value: incoming } = await session.incomingUnidirectionalStreams.getReader().read()
    const data = await readAll(incoming)
    const outgoing = await session.createUnidirectionalStream()
    await writeAll(outgoing, data)
    held.push(incoming, outgoing)
    seen.push({ stream: 'uni echo', halves: server.counters().streamHalves, sessionEnded: ended })
    await datagram
  })
  try {
    // One session: five bidi echoes one after another, a uni echo and a datagram.
    assertClientOk(await runWtClient(wt, ['soak', '1', '1', '5'], { timeoutMs: 30_000 }))
    await Promise.all(wt.served)
    assert.equal(held.length, 7, 'JS still holds every stream')
    assert.deepEqual(
      seen,
      [0, 1, 2, 3, 4].map((i) => ({ stream: `bidi echo ${i}`, halves: 0, sessionEnded: false })).concat([{ stream: 'uni echo', halves: 0, sessionEnded: false }]),
    )
  } finally {
    await wt.server.close()
  }
})

test('streams left unread are let go of when their session ends, and then fail with the session', { timeout: 60_000 }, async () => {
  assertClientBuilt()
  const held = []
  let unread = null
  let afterEnd = null
  // The client's server-streams scenario: on a command stream it asks for a server-opened bidi,
  // then for a uni stream, and reads them. This server reads only each command's first chunk
  // (never the end of the command stream) and never reads the readable of the bidi it opened.
  const wt = await startServer(async (session, server) => {
    const commands = session.incomingBidirectionalStreams.getReader()
    for (;;) {
      const { value: command, done } = await commands.read()
      if (done) break
      const reader = command.readable.getReader()
      const { value } = await reader.read()
      reader.releaseLock()
      const line = Buffer.from(value).toString()
      if (line.startsWith('open-bidi')) {
        const opened = await session.createBidirectionalStream()
        await writeAll(opened.writable, Buffer.from('server bidi'))
        held.push(opened)
        unread = opened.readable
      } else {
        const opened = await session.createUnidirectionalStream()
        await writeAll(opened, Buffer.from('server uni'))
        held.push(opened)
      }
      await command.writable.getWriter().close()
      held.push(command)
    }
    await session.closed.catch(() => {})
    afterEnd = {
      halves: server.counters().streamHalves,
      read: await unread
        .getReader()
        .read()
        .then(
          () => 'resolved',
          (error) => error.code,
        ),
    }
  })
  try {
    assertClientOk(await runWtClient(wt, ['server-streams'], { timeoutMs: 30_000 }))
    await Promise.all(wt.served)
    assert.equal(held.length, 4, 'JS still holds both command streams and both streams it opened')
    assert.deepEqual(afterEnd, { halves: 0, read: 'WT_ERR_SESSION_CLOSED' })
  } finally {
    await wt.server.close()
  }
})
