// The echo server every client suite talks to, written on the public API only:
// - an incoming bidi stream is echoed back on itself, then finished;
// - an incoming uni stream is read whole, then sent back on a server-opened uni stream;
// - every datagram is sent back as it came.
// A bidi stream whose first bytes are a command line ("open-bidi\n", "open-uni\n", "close <code> <reason>\n")
// makes the server act instead of echoing, so clients can test server-initiated behaviour.
import { Server, generateCertificate } from '../../index.js'

export async function startEchoServer(options = {}) {
  const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1', '::1'], days: 10 })
  const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key, ...options })
  const sessions = []
  server.on('session', (session) => {
    sessions.push(session)
    session.closed.catch(() => {})
    serveSession(session).catch(() => {})
  })
  await server.ready
  const { port } = server.address()
  return {
    server,
    sessions,
    port,
    certificate,
    hashHex: Buffer.from(certificate.hash.value).toString('hex'),
    url: (path = '/echo') => `https://127.0.0.1:${port}${path}`,
    close: () => server.close(),
  }
}

async function serveSession(session) {
  void echoDatagrams(session)
  void echoUni(session)
  const reader = session.incomingBidirectionalStreams.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    void handleBidi(session, value).catch(() => {})
  }
}

async function echoDatagrams(session) {
  const reader = session.datagrams.readable.getReader()
  const writer = session.datagrams.writable.getWriter()
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

async function handleBidi(session, stream) {
  const reader = stream.readable.getReader()
  const writer = stream.writable.getWriter()
  const first = await reader.read()
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
  const close = /^close (\d+) ([^\n]*)\n/.exec(head)
  if (close) {
    session.close({ closeCode: Number(close[1]), reason: close[2] })
    return
  }
  await writer.write(first.value)
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    await writer.write(value)
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
