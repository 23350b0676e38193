// The echo server every client suite talks to, written on the public API only:
// - an incoming bidi stream is echoed back on itself, then finished;
// - an incoming uni stream is read whole, then sent back on a server-opened uni stream;
// - every datagram is sent back as it came.
// A bidi stream whose first bytes are a command line makes the server act instead of echoing, so
// clients can test server-initiated behaviour:
//   "open-bidi\n" / "open-uni\n"    the server opens a stream carrying 'server bidi' / 'server uni'
//   "close <code> <reason>\n"         the server closes the session with that code and reason
//   "drain\n"                         the server drains the session (session.drain()), then answers 'draining'
//   "reset <code>\n"                  the server aborts its side of this stream (RESET_STREAM, code)
//   "stop <code>\n"                   the server cancels reading this stream (STOP_SENDING, code)
//   "burst <count> <size>\n"          the server sends `count` datagrams of `size` bytes back to back
//   "burst-reuse <count> <size>\n"    the same, refilling one buffer between awaited writes
//                                     (the first 4 bytes number them), then answers 'sent'
// It runs two endpoints (`workers: 2`), as a server on a machine with three or more cores does by
// default, so every client's packets go through the kernel's steering by connection ID (the
// other suites keep this machine's default of one).
// Stream errors the server sees (a peer's RESET_STREAM on read, STOP_SENDING on write) are recorded
// in `streamErrors` as { kind: 'read' | 'write', streamErrorCode, source, code }.
import { Server, generateCertificate, WebTransportError } from '../../index.js'

export async function startEchoServer(options = {}) {
  const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1', '::1'], days: 10 })
  const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key, workers: 2, ...options })
  const sessions = []
  const streamErrors = []
  server.on('session', (session) => {
    sessions.push(session)
    session.closed.catch(() => {})
    serveSession(session, streamErrors).catch(() => {})
  })
  await server.ready
  const { port } = server.address()
  return {
    server,
    sessions,
    streamErrors,
    port,
    certificate,
    hashHex: Buffer.from(certificate.hash.value).toString('hex'),
    url: (path = '/echo') => `https://127.0.0.1:${port}${path}`,
    close: () => server.close(),
    /** close(), failing the caller if it has not settled within `ms`: a close that never settles is a server bug to report, not a run to hang. */
    closeWithin: async (ms = 10_000) => {
      let timer
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`echo server close() did not settle within ${ms} ms`)), ms)
      })
      try {
        await Promise.race([server.close(), timeout])
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

// One writer per session: a WritableStream has a single writer at a time.
const datagramWriters = new WeakMap()

async function serveSession(session, streamErrors) {
  datagramWriters.set(session, session.datagrams.writable.getWriter())
  void echoDatagrams(session)
  void echoUni(session)
  const reader = session.incomingBidirectionalStreams.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    void handleBidi(session, value, streamErrors).catch(() => {})
  }
}

async function echoDatagrams(session) {
  const reader = session.datagrams.readable.getReader()
  const writer = datagramWriters.get(session)
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      await writer.write(value)
    }
  } catch {}
}

async function echoUni(session) {
  const reader = session.incomingUnidirectionalStreams.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      void (async () => {
        const data = await readAll(value)
        const out = await session.createUnidirectionalStream()
        const writer = out.getWriter()
        await writer.write(data)
        await writer.close()
      })().catch(() => {})
    }
  } catch {}
}

function record(streamErrors, kind, error) {
  streamErrors.push({ kind, streamErrorCode: error?.streamErrorCode ?? null, source: error?.source, code: error?.code })
}

async function handleBidi(session, stream, streamErrors) {
  const reader = stream.readable.getReader()
  const writer = stream.writable.getWriter()
  let first
  try {
    first = await reader.read()
  } catch (error) {
    record(streamErrors, 'read', error)
    return
  }
  if (first.done) {
    await writer.close()
    return
  }
  const head = Buffer.from(first.value).toString('utf8', 0, Math.min(first.value.byteLength, 200))
  if (head.startsWith('open-bidi\n')) {
    const bidi = await session.createBidirectionalStream()
    const w = bidi.writable.getWriter()
    await w.write(new TextEncoder().encode('server bidi'))
    await w.close()
    await writer.close()
    return
  }
  if (head.startsWith('open-uni\n')) {
    const uni = await session.createUnidirectionalStream()
    const w = uni.getWriter()
    await w.write(new TextEncoder().encode('server uni'))
    await w.close()
    await writer.close()
    return
  }
  if (head.startsWith('drain\n')) {
    session.drain()
    await writer.write(new TextEncoder().encode('draining'))
    await writer.close()
    return
  }
  const close = /^close (\d+) ([^\n]*)\n/.exec(head)
  if (close) {
    session.close({ closeCode: Number(close[1]), reason: close[2] })
    return
  }
  const burst = /^burst(-reuse)? (\d+) (\d+)\n/.exec(head)
  if (burst) {
    const dw = datagramWriters.get(session)
    const shared = new Uint8Array(Number(burst[3]))
    for (let i = 0; i < Number(burst[2]); i++) {
      const datagram = burst[1] ? shared : new Uint8Array(Number(burst[3]))
      new DataView(datagram.buffer).setUint32(0, i)
      await dw.write(datagram)
    }
    await writer.write(new TextEncoder().encode('sent'))
    await writer.close()
    return
  }
  const reset = /^reset (\d+)\n/.exec(head)
  if (reset) {
    await writer.abort(new WebTransportError('reset by the test server', { streamErrorCode: Number(reset[1]) }))
    return
  }
  const stop = /^stop (\d+)\n/.exec(head)
  if (stop) {
    await reader.cancel(new WebTransportError('stopped by the test server', { streamErrorCode: Number(stop[1]) }))
    return
  }
  try {
    await writer.write(first.value)
  } catch (error) {
    record(streamErrors, 'write', error)
    return
  }
  for (;;) {
    let next
    try {
      next = await reader.read()
    } catch (error) {
      record(streamErrors, 'read', error)
      writer.abort().catch(() => {})
      return
    }
    if (next.done) break
    try {
      await writer.write(next.value)
    } catch (error) {
      record(streamErrors, 'write', error)
      return
    }
  }
  await writer.close()
}

export async function readAll(readable) {
  const chunks = []
  const reader = readable.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    chunks.push(Buffer.from(value))
  }
  return Buffer.concat(chunks)
}
