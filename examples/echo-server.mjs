// `npm start`: a WebTransport echo server (bidi, uni and datagram echo) with a fresh development
// certificate, and a page served over plain HTTP on localhost that connects to it with the
// certificate hash pinned. Open the printed address in Chromium or Firefox and watch the echoes.
//
// Environment: WT_PORT (UDP, default 4433), HTTP_PORT (TCP, default 8080), HOST (WebTransport
// bind address, default '::'), HTTP_HOST (page server's, default 'localhost').
import http from 'node:http'
import { Server, generateCertificate } from '../index.mjs'
import { echoSession } from './echo.mjs'

const wtPort = Number(process.env.WT_PORT ?? 4433)
const httpPort = Number(process.env.HTTP_PORT ?? 8080)
const host = process.env.HOST ?? '::'
const httpHost = process.env.HTTP_HOST ?? 'localhost'

const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1', '::1'], days: 10 })
const server = new Server({ port: wtPort, host, cert: certificate.cert, key: certificate.key })

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
const hashHex = Buffer.from(certificate.hash.value).toString('hex')
// The bound port, which differs from WT_PORT when that is 0.
const page = pageHtml(hashHex, server.address().port)
const web = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
  res.end(page)
})
web.listen(httpPort, httpHost, () => {
  console.log(`WebTransport echo server on udp ${host} port ${server.address().port}`)
  const shown = httpHost.includes(':') ? `[${httpHost}]` : httpHost
  console.log(`open http://${shown}:${web.address().port}/ in a browser (Ctrl+C stops)`)
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    web.close()
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
