// `npm start`: a WebTransport echo server (bidi, uni and datagram echo) with a fresh development
// certificate, and its page, served as a site serves one: over HTTPS (TCP, node:https) with an
// `Alt-Svc` header that tells the browser HTTP/3 is on the same Server, which serves the same page
// through its `fetch` handler. The page connects to the echo with the certificate hash pinned.
// Open the printed address in Chromium or Firefox and watch the echoes.
//
// A browser trusts the development certificate only when told to: accept the warning (the page
// then stays on HTTPS over TCP: browsers take HTTP/3 only with a trusted certificate), or start
// Chromium with the printed flags, which trust it by its key and allow it over QUIC. With HTTPS_PORT
// other than the UDP port, the first load is over TCP and Alt-Svc moves reloads to HTTP/3.
//
// Environment: WT_PORT (UDP, default 4433), HTTPS_PORT (TCP, default: the UDP port's number, as
// sites serve both on 443), HOST (WebTransport bind address, default '::'), HTTPS_HOST (the HTTPS
// server's, default 'localhost').
import https from 'node:https'
import { X509Certificate, createHash } from 'node:crypto'
import { Server, generateCertificate } from '../index.mjs'
import { echoSession } from './echo.mjs'

const wtPort = Number(process.env.WT_PORT ?? 4433)
const host = process.env.HOST ?? '::'
const httpsHost = process.env.HTTPS_HOST ?? 'localhost'
const PAGE_HEADERS = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }

const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1', '::1'], days: 10 })
const tls = { cert: certificate.cert, key: certificate.key }
// The page needs the bound port, known once the server is listening; no request comes before.
let page
const server = new Server({
  port: wtPort,
  host,
  ...tls,
  fetch: () => new Response(page, { headers: PAGE_HEADERS }),
})

server.on('session', async (session) => {
  console.log(`session from ${session.request.remoteAddress}:${session.request.remotePort} ${session.request.path}`)
  await echoSession(session)
  const { closeCode, reason } = await session.closed.catch(() => ({ closeCode: -1, reason: 'lost' }))
  console.log(`session closed: ${closeCode} ${reason}`)
})

server.on('error', (error) => {
  console.error(`cannot start: ${error.message}`)
  process.exit(1)
})

await server.ready
const { port } = server.address()
page = pageHtml(Buffer.from(certificate.hash.value).toString('hex'), port)
const web = https.createServer(tls, (req, res) => {
  // Browsers switch to HTTP/3 only after a TCP response advertised it.
  res.writeHead(200, { ...PAGE_HEADERS, 'alt-svc': server.altSvc })
  res.end(page)
})
web.on('error', (error) => {
  console.error(`cannot start the HTTPS server: ${error.message}`)
  process.exit(1)
})
web.listen(Number(process.env.HTTPS_PORT ?? port), httpsHost, () => {
  const shown = httpsHost.includes(':') ? `[${httpsHost}]` : httpsHost
  const address = `https://${shown}:${web.address().port}/`
  const spki = new X509Certificate(certificate.cert).publicKey.export({ type: 'spki', format: 'der' })
  const spkiHash = createHash('sha256').update(spki).digest('base64')
  console.log(`WebTransport echo and HTTP/3 on udp ${host} port ${port}, HTTPS on tcp port ${web.address().port}`)
  console.log(`open ${address} in a browser (accept the development certificate; Ctrl+C stops)`)
  // Chromium takes a certificate without a public root over QUIC only for the hosts of
  // --origin-to-force-quic-on (any port); the SPKI flag trusts it, on TCP too.
  const force = `${shown}:${port}`
  console.log(
    `or over HTTP/3: chromium --user-data-dir=$(mktemp -d) --origin-to-force-quic-on=${force} ` +
      `--ignore-certificate-errors-spki-list=${spkiHash} ${address}`,
  )
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    web.close()
    web.closeAllConnections()
    await server.close({ closeCode: 0, reason: 'server stopping' })
    process.exit(0)
  })
}

function pageHtml(hash, port) {
  return `<!doctype html>
<meta charset="utf-8">
<title>webtransport-napi echo</title>
<style>body{font:15px system-ui;margin:2em;max-width:50em} #log{white-space:pre-wrap;background:#f4f4f4;padding:1em;border-radius:6px} button{margin-right:.5em}</style>
<h1>webtransport-napi echo</h1>
<p><input id="msg" value="hello WebTransport" size="40">
<button id="bidi">bidi echo</button><button id="uni">uni echo</button><button id="dgram">datagram echo</button><button id="close">close</button></p>
<div id="log"></div>
<script type="module">
const log = (line) => { document.getElementById('log').textContent += line + '\\n' }
const hash = new Uint8Array('${hash}'.match(/../g).map((h) => parseInt(h, 16)))
const url = 'https://' + location.hostname + ':${port}/echo'
const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }] })
const enc = new TextEncoder(), dec = new TextDecoder()
const text = () => document.getElementById('msg').value
async function readAll(readable) { let s = ''; for await (const c of readable) s += dec.decode(c, { stream: true }); return s }
try { await wt.ready; log('connected to ' + url) } catch (e) { log('connection failed: ' + e) }
wt.closed.then((c) => log('closed: ' + c.closeCode + ' ' + c.reason), (e) => log('lost: ' + e))
;(async () => { for await (const r of wt.incomingUnidirectionalStreams) log('uni echo: ' + await readAll(r)) })()
;(async () => { for await (const d of wt.datagrams.readable) log('datagram echo: ' + dec.decode(d)) })()
const dgw = wt.datagrams.writable.getWriter()
document.getElementById('bidi').onclick = async () => {
  const s = await wt.createBidirectionalStream(); const w = s.writable.getWriter()
  await w.write(enc.encode(text())); await w.close(); log('bidi echo: ' + await readAll(s.readable))
}
document.getElementById('uni').onclick = async () => {
  const w = (await wt.createUnidirectionalStream()).getWriter(); await w.write(enc.encode(text())); await w.close()
}
document.getElementById('dgram').onclick = () => dgw.write(enc.encode(text()))
document.getElementById('close').onclick = () => wt.close({ closeCode: 0, reason: 'page closed' })
</script>
`
}
