// Type-checked by `npm test` (tsc --noEmit): the README's usage must compile, and wrong use must not.
import { Server, generateCertificate, WebTransport, WebTransportError, WebTransportReceiveStream, WebTransportSendStream } from 'webtransport-napi'
import type { WebTransportSession, WebTransportRequest, SessionCloseInfo, FetchInfo } from 'webtransport-napi'
import { Hono } from 'hono'

const { cert, key, hash } = generateCertificate({ hostnames: ['localhost'], days: 10 })
const algorithm: 'sha-256' = hash.algorithm
const bytes: Uint8Array = hash.value

const server = new Server({
  port: 4433,
  host: '::',
  cert,
  key: Buffer.from(key),
  checkOrigin: async (origin: string | null, request: WebTransportRequest) => origin === null || request.authority.startsWith('localhost'),
  callbackTimeout: 1000,
  protocols: ['chat-v2', 'chat-v1'],
  onRequest: (request) => (request.path === '/chat' ? { headers: { 'x-room': 'lobby' }, protocol: 'chat-v2' } : 404),
  maxSessions: 100,
  maxIncomingStreams: { bidi: 50, uni: 10 },
  congestionControl: 'bbr',
  keyLog: false,
  closeGrace: 500,
  idleTimeout: 10_000,
  keepAliveInterval: 0,
  datagrams: { incomingHighWaterMark: 256, outgoingHighWaterMark: 64 },
  flowControl: { maxData: 4 << 20, maxStreamsBidi: 64, maxStreamsUni: 16 },
  fetch: async (request: Request, info) => new Response(`${request.method} from ${info.remoteAddress}:${info.remotePort}`),
  maxRequestBodySize: 1 << 20,
})
const altSvc: string | null = server.altSvc

// The README's Hono app: `fetch: app.fetch` plugs in as is, and `info` is Hono's env.
const app = new Hono<{ Bindings: FetchInfo }>()
app.get('/hello/:name', (c) => c.json({ hello: c.req.param('name'), from: c.env.remoteAddress }))
new Server({ cert, key, fetch: app.fetch })
new Server({ cert, key, fetch: new Hono().fetch })
new Server({ cert, key, workers: 2, serverId: "0a0b0c0d01020304", secret: new Uint8Array(32) })
new Server({ cert, key, serverId: new Uint8Array([1, 2]), secret: "a fleet secret of thirty-two bytes!" })

server.on('session', async (session: WebTransportSession) => {
  const path: string = session.request.path
  const protocol: string = session.protocol
  const draft: 'webtransport' | 'webtransport-h3' = session.request.protocol
  const method: string = session.request.method
  // Ask the client to wrap up; the session keeps working until one side closes it.
  session.drain()
  await session.draining
  void [draft, method]
  for await (const { readable, writable } of session.incomingBidirectionalStreams) {
    await readable.pipeTo(writable)
    const receive: WebTransportReceiveStream = readable
    const send: WebTransportSendStream = writable
    // Still plain WHATWG streams, usable wherever those are.
    const plain: ReadableStream<Uint8Array> = receive
    void [plain, send, readable instanceof WebTransportReceiveStream]
  }
  for await (const readable of session.incomingUnidirectionalStreams) {
    const text = readable.pipeThrough(new TextDecoderStream())
    void text
  }
  const writer = (await session.createUnidirectionalStream()).getWriter()
  await writer.write(new Uint8Array([1, 2, 3]))
  const urgent = await session.createUnidirectionalStream({ sendOrder: 10 })
  const { writable: background } = await session.createBidirectionalStream({ sendOrder: -1 })
  background.sendOrder = urgent.sendOrder - 20
  const key: Uint8Array = await session.exportKeyingMaterial(new TextEncoder().encode('app key'))
  const material: Uint8Array = await session.exportKeyingMaterial(new Uint8Array(4), new ArrayBuffer(8), 16)
  void [key, material]
  const dg = session.datagrams.writable.getWriter()
  await dg.write(new Uint8Array(session.datagrams.maxDatagramSize))
  const info: SessionCloseInfo = await session.closed
  session.close({ closeCode: info.closeCode, reason: 'bye' })
  const stats = await session.getStats()
  const rtt: number = stats.rtt + stats.datagrams.droppedIncoming
  const credit: number | undefined = stats.flowControl?.localMaxData
  void [path, protocol, rtt, credit]
})
server.on('requestError', (error, request) => {
  const code: string = error.code
  void [code, request.url]
})
server.on('error', (error) => void error.systemError)
server.once('fault', (error) => {
  const code: 'WT_ERR_INTERNAL' | string = error.code
  void [code, error.message]
})
server.on('listening', () => {
  const address = server.address()
  if (address) void address.port
  const { connections, sessions, faults, tasks, streamHalves, nativeSessions, nativeStreams, nativeRequests } = server.counters()
  void [connections, sessions, faults, tasks, streamHalves, nativeSessions, nativeStreams, nativeRequests]
  const perWorker: number[] = server.counters().workers.map((w) => w.packets + w.misrouted + w.connections)
  void perWorker
})

const resetReason = new WebTransportError('done', { source: 'stream', streamErrorCode: 7 })
const code: number | null = resetReason.streamErrorCode

async function shutdown() {
  await server.ready
  await server.close({ closeCode: 0, reason: 'maintenance' })
  await using disposable = new Server({ cert, key, port: 0 })
  void disposable
}
void [algorithm, bytes, code, shutdown]

// Wrong use must not compile.
// @ts-expect-error cert and key are required
new Server({ port: 1 })
// @ts-expect-error port is a number
new Server({ cert, key, port: '4433' })
// @ts-expect-error checkOrigin returns a boolean
new Server({ cert, key, checkOrigin: () => 'yes' })
// @ts-expect-error onRequest answers with a status, not a string
new Server({ cert, key, onRequest: () => 'ok' })
// @ts-expect-error only the three congestion controllers exist
new Server({ cert, key, congestionControl: 'vegas' })
// @ts-expect-error fetch returns a Response
new Server({ cert, key, fetch: () => 'text' })
// @ts-expect-error flow-control limits are numbers
new Server({ cert, key, flowControl: { maxData: '16M' } })
// @ts-expect-error keyLog is a boolean
new Server({ cert, key, keyLog: 'yes' })
// @ts-expect-error unknown events are refused
server.on('connection', () => {})
// @ts-expect-error closeCode is a number
server.close({ closeCode: 'x' })
// @ts-expect-error the stream classes are made by the library, not by users
new WebTransportSendStream()
// @ts-expect-error days is a number
generateCertificate({ days: '10' })

// The client: browser code compiles unchanged, plus the Node-only options.
async function client(): Promise<SessionCloseInfo> {
  const wt = new WebTransport('https://127.0.0.1:4433/chat', {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: bytes }],
    protocols: ['chat-v2'],
    headers: { 'x-room': 'lobby' },
    congestionControl: 'low-latency',
    ca: [cert],
    localAddress: '127.0.0.1',
  })
  await wt.ready
  const protocol: string = wt.protocol
  const reliability: 'pending' | 'reliable-only' | 'supports-unreliable' = wt.reliability
  const { readable, writable } = await wt.createBidirectionalStream({ sendOrder: 1 })
  const writer = writable.getWriter()
  await writer.write(new TextEncoder().encode(protocol + reliability))
  const uni: WebTransportSendStream = await wt.createUnidirectionalStream()
  for await (const chunk of readable) chunk satisfies Uint8Array
  await uni.close()
  await wt.datagrams.writable.getWriter().write(new Uint8Array(4))
  const keys: Uint8Array = await wt.exportKeyingMaterial(new Uint8Array(8))
  const { rtt } = await wt.getStats()
  wt.close({ closeCode: keys.length + rtt, reason: 'done' })
  // @ts-expect-error congestionControl takes the W3C values only
  new WebTransport('https://127.0.0.1:4433/', { congestionControl: 'bbr' })
  return wt.closed.catch((error: WebTransportError) => ({ closeCode: error.status ?? 0, reason: error.message }))
}
void client
