// `npm start`'s demo as a person uses it: start it, open the printed address in Chromium (started
// with the printed flag that trusts the development certificate), press the three echo buttons and
// see the echoes on the page; Ctrl+C stops it cleanly. The page comes over HTTPS (TCP) with an
// Alt-Svc header naming the WebTransport server's UDP port, and after a reload over HTTP/3 from
// that Server's `fetch`: the same bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { X509Certificate, createHash } from 'node:crypto'
import https from 'node:https'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser, runInPage, withTimeout } from './support/browser.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('the demo page comes over HTTPS with Alt-Svc, then over HTTP/3, and shows bidi, uni and datagram echoes', { timeout: 90_000 }, async () => {
  const demo = spawn(process.execPath, ['examples/echo-server.mjs'], {
    cwd: root,
    env: { ...process.env, WT_PORT: '0', HTTPS_PORT: '0', HOST: '127.0.0.1', HTTPS_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolve) => demo.on('exit', (code, signal) => resolve({ code, signal })))
  let browser
  try {
    let out = ''
    const { address, udpPort, forceQuic, spkiHash } = await withTimeout(
      new Promise((resolve) => {
        demo.stdout.on('data', (d) => {
          out += d
          const udp = /on udp \S+ port (\d+)/.exec(out)
          const open = /open (https:\/\/\S+) in a browser/.exec(out)
          const chromium = /^or over HTTP\/3: chromium .*(--origin-to-force-quic-on=\S+) --ignore-certificate-errors-spki-list=(\S+) /m.exec(out)
          if (udp && open && chromium) {
            resolve({ address: open[1], udpPort: Number(udp[1]), forceQuic: chromium[1], spkiHash: chromium[2] })
          }
        })
      }),
      30_000,
      'the demo printing its address',
    )

    // HTTPS over TCP: the page, the certificate whose SPKI hash was printed, and Alt-Svc.
    const overTcp = await httpsGet(address)
    assert.equal(overTcp.status, 200)
    assert.equal(overTcp.spkiHash, spkiHash, 'the printed flag trusts the certificate the demo serves')
    assert.equal(overTcp.headers['alt-svc'], `h3=":${udpPort}"; ma=86400`)
    assert.match(overTcp.body, /<title>webtransport-napi echo<\/title>/)

    // The printed flags. --origin-to-force-quic-on names the UDP port, not the page's TCP one: it only
    // lets Chromium accept the certificate over QUIC for that host, so the switch is Alt-Svc's doing.
    assert.equal(forceQuic, `--origin-to-force-quic-on=127.0.0.1:${udpPort}`)
    browser = await launchBrowser({ args: [forceQuic, `--ignore-certificate-errors-spki-list=${spkiHash}`] })
    const page = await browser.newPage()
    const first = await page.goto(address, { timeout: 15_000 })
    assert.equal(await first.text(), overTcp.body)
    const protocol = () => runInPage(page, () => performance.getEntriesByType('navigation')[0].nextHopProtocol, undefined, { timeout: 5_000 })
    // (Unless port 0 gave TCP the UDP port's number: then the origin itself is forced onto QUIC.)
    if (new URL(address).port !== String(udpPort)) assert.equal(await protocol(), 'http/1.1', 'the first load knows no HTTP/3 yet')
    // Chromium connects to the advertised alternative in the background; a reload uses it once it is
    // up. Reloads until then, a bounded number.
    let reloaded = first
    for (let attempt = 0; attempt < 20 && (await protocol()) !== 'h3'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      reloaded = await page.reload({ timeout: 15_000 })
    }
    assert.equal(await protocol(), 'h3', 'a reload comes over HTTP/3, as Alt-Svc advertised')
    assert.equal(await reloaded.text(), overTcp.body, 'the same page over HTTP/3')
    const log = () => page.textContent('#log')
    await page.waitForFunction(() => document.getElementById('log').textContent.includes('connected to'), null, { timeout: 15_000 })
    await page.fill('#msg', 'hello demo')
    await page.click('#bidi')
    await page.click('#uni')
    await page.click('#dgram')
    await page.waitForFunction(() => (document.getElementById('log').textContent.match(/echo: hello demo/g) || []).length >= 3, null, {
      timeout: 15_000,
    })
    const text = await log()
    assert.match(text, /bidi echo: hello demo/)
    assert.match(text, /uni echo: hello demo/)
    assert.match(text, /datagram echo: hello demo/)
  } finally {
    await browser?.close()
    demo.kill('SIGINT')
  }
  const { code, signal } = await withTimeout(exited, 15_000, 'the demo exiting on SIGINT')
  assert.equal(signal, null)
  assert.equal(code, 0, 'the demo shuts down cleanly on Ctrl+C')
})

/** GET over HTTPS; the certificate has no CA to verify it by, so its SPKI hash is returned for the caller to compare. */
function httpsGet(url) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = https.get(url, { rejectUnauthorized: false }, (res) => {
        const cert = new X509Certificate(res.socket.getPeerCertificate().raw)
        const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body, spkiHash: createHash('sha256').update(spki).digest('base64') }),
        )
        res.on('error', reject)
      })
      req.on('error', reject)
    }),
    10_000,
    `GET ${url}`,
  )
}
