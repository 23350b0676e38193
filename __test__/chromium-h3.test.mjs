// Chromium loads a page over HTTP/3 from our server (the `fetch` handler) and opens WebTransport to
// the same origin, with the certificate trusted as a browser trusts a real one: no
// `serverCertificateHashes` (whose rules, ECDSA and <= 14 days, are then not the ones that apply).
//
// Chromium only uses HTTP/3 after a TCP response advertised it (Alt-Svc), unless
// --origin-to-force-quic-on names the origin. That flag is also what lets it take a certificate
// without a public root over QUIC at all: for any other host its QUIC certificate check fails such a
// certificate (ERR_QUIC_CERT_ROOT_NOT_KNOWN; the net-log shows CERTIFICATE_VERIFY_FAILED), for page
// loads and for WebTransport without hashes alike, whatever else trusts it. Here
// --ignore-certificate-errors-spki-list trusts it by the SHA-256 of its SubjectPublicKeyInfo
// (Chromium honours that flag only with a --user-data-dir, which launchBrowser always gives it).
// Without either flag the page load fails (ERR_QUIC_PROTOCOL_ERROR without the SPKI one;
// ERR_CONNECTION_REFUSED without forcing QUIC, as nothing listens on TCP).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createHash } from 'node:crypto'
import { Server, generateCertificate } from '../index.js'
import { launchBrowser, runInPage, withTimeout } from './support/browser.mjs'

const HOST = '127.0.0.1'

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>over HTTP/3</title>
<script>
// Opens WebTransport to this page's own origin (no serverCertificateHashes) and echoes one bidi stream.
window.echoOverWebTransport = async (text) => {
  const timeout = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('page timeout: ' + what)), ms))])
  const wt = new WebTransport(location.origin + '/wt')
  wt.closed.catch(() => {})
  await timeout(wt.ready, 10000, 'wt.ready')
  const stream = await wt.createBidirectionalStream()
  const writer = stream.writable.getWriter()
  await writer.write(new TextEncoder().encode(text))
  await writer.close()
  const reply = await timeout(new Response(stream.readable).text(), 10000, 'the echo')
  wt.close({ closeCode: 7, reason: 'done' })
  await timeout(wt.closed, 10000, 'wt.closed')
  return reply
}
</script>
<p id="hello">served over HTTP/3</p>
`

/** base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes. */
function spkiHash(certPem) {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

test('Chromium loads a page over HTTP/3 and opens WebTransport to the same origin without certificate hashes', { timeout: 90_000 }, async () => {
  const certificate = generateCertificate({ hostnames: [HOST], days: 10 })
  const requests = []
  const sessions = []
  const server = new Server({
    port: 0,
    host: HOST,
    cert: certificate.cert,
    key: certificate.key,
    fetch(request) {
      const { pathname } = new URL(request.url)
      requests.push(`${request.method} ${pathname}`)
      if (pathname === '/') return new Response(PAGE, { headers: { 'content-type': 'text/html; charset=utf-8' } })
      return new Response('not here', { status: 404 })
    },
  })
  server.on('session', async (session) => {
    sessions.push(session)
    session.closed.catch(() => {})
    try {
      for await (const { readable, writable } of session.incomingBidirectionalStreams) readable.pipeTo(writable).catch(() => {})
    } catch {}
  })
  await server.ready
  const origin = `${HOST}:${server.address().port}`
  let browser
  try {
    browser = await launchBrowser({
      args: [`--origin-to-force-quic-on=${origin}`, `--ignore-certificate-errors-spki-list=${spkiHash(certificate.cert)}`],
    })
    const page = await browser.newPage()
    const response = await page.goto(`https://${origin}/`, { timeout: 15_000 })
    assert.equal(response.status(), 200)
    assert.equal(await page.textContent('#hello'), 'served over HTTP/3')
    const protocol = await runInPage(page, () => performance.getEntriesByType('navigation')[0].nextHopProtocol)
    assert.equal(protocol, 'h3')
    assert.ok(requests.includes('GET /'), `the page came from fetch (saw ${requests.join(', ')})`)

    const reply = await runInPage(page, (text) => window.echoOverWebTransport(text), 'echo over the same origin', { timeout: 30_000 })
    assert.equal(reply, 'echo over the same origin')
    assert.equal(sessions.length, 1)
    assert.equal(sessions[0].request.path, '/wt')
    assert.equal(sessions[0].request.origin, `https://${origin}`)
    assert.deepEqual(await withTimeout(sessions[0].closed, 10_000, 'the session closing'), { closeCode: 7, reason: 'done' })
  } finally {
    await browser?.close()
    await withTimeout(server.close(), 15_000, 'closing the server')
  }
})
