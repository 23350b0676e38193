// `node examples/hono.mjs`: a Hono app answering regular HTTP/3 requests through `fetch: app.fetch`,
// and a WebTransport echo on the same port and origin. Hono's `fetch(request, env)` receives our
// `info` as its env, so a route reads the client's address as `c.env.remoteAddress`.
//
// Browsers speak HTTP/3 to an origin only once a TCP response advertised it (Alt-Svc: see the demo,
// examples/echo-server.mjs) or when told to: the printed Chromium command forces QUIC for this
// origin and trusts the development certificate by the hash of its public key.
//
// Environment: PORT (UDP, default 4433), HOST (bind address, default '::'). Hono is this repository's
// dev dependency; in a project of your own, `npm i hono`.
import { X509Certificate, createHash } from 'node:crypto'
import { Hono } from 'hono'
import { Server, generateCertificate } from '../index.mjs'
import { echoSession } from './echo.mjs'

const app = new Hono()
app.get('/', (c) => c.text('Hono over HTTP/3. Try /hello/<name> or POST JSON to /json.\n'))
app.get('/hello/:name', (c) => c.json({ hello: c.req.param('name'), from: c.env.remoteAddress }))
app.post('/json', async (c) => c.json({ received: await c.req.json() }))

const port = Number(process.env.PORT ?? 4433)
const host = process.env.HOST ?? '::'
const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1', '::1'], days: 10 })
const server = new Server({ port, host, cert: certificate.cert, key: certificate.key, fetch: app.fetch })
server.on('session', (session) => echoSession(session))
server.on('error', (error) => {
  console.error(`cannot start: ${error.message}`)
  process.exit(1)
})

await server.ready
const origin = `127.0.0.1:${server.address().port}`
const spki = new X509Certificate(certificate.cert).publicKey.export({ type: 'spki', format: 'der' })
const spkiHash = createHash('sha256').update(spki).digest('base64')
console.log(`Hono over HTTP/3 on udp ${host} port ${server.address().port}; in Chromium (Ctrl+C stops):`)
console.log(
  `chromium --user-data-dir=$(mktemp -d) --origin-to-force-quic-on=${origin} ` +
    `--ignore-certificate-errors-spki-list=${spkiHash} https://${origin}/hello/you`,
)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await server.close({ closeCode: 0, reason: 'server stopping' })
    process.exit(0)
  })
}
