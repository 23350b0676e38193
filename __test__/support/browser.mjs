// Drives a headless browser against a WebTransport server under test. Chromium (through playwright-core) is
// launched here; support/firefox.mjs plugs Firefox into the same env.
//
// - launchBrowser(): one Chromium per test file, with a fresh profile in a temp dir (QUIC left on).
// - startPageServer(): serves the test page over plain HTTP on 127.0.0.1, port 0. Loopback origins are
//   secure contexts, so `WebTransport` is available. The same server is reachable as
//   http://127.0.0.1:<port>/ (same host as a WebTransport server on https://127.0.0.1:<wtPort>) and as
//   http://localhost:<port>/ (a different host: the default origin check refuses it).
// - runInPage(): page.evaluate() bounded by a timeout; the page's console output is attached to errors.
// - createBrowserEnv(launch): the page server plus the browser `launch` starts, with env.run('same' | 'cross',
//   fn, arg) that opens a fresh page, runs fn(arg) in it and always closes the page, and env.close().
//   startBrowserEnv() is createBrowserEnv(launchBrowser); firefox.mjs's startFirefoxEnv() is the Firefox one.
// - launchWithProfile() / openTestPage(): the parts of a launcher that do not depend on the browser (a temp
//   profile removed after close; a page that records its console and waits for the helpers below).
//
// The page defines `window.T`, a few helpers the test functions (which run in the page) rely on:
//   T.connect(url, hashHex, options) -> WebTransport (serverCertificateHashes set from hashHex)
//   T.open(url, hashHex, options) -> WebTransport, once `ready` resolved (rejects after 10 s)
//   T.exchange(wt, bytes, ms, what) -> Uint8Array: one bidi stream, bytes sent and finished, the whole reply
//   T.readAll(readable) -> Uint8Array     T.enc(string) / T.dec(bytes)     T.hexToBytes(hex)
//   T.timeout(promise, ms, what)          T.sleep(ms)                        T.describeError(err)
//   T.failure(promise, ms, what) -> null if it resolves, else T.describeError(its rejection or the timeout)
//   T.toBase64(bytes)                     T.pattern(length, seed) -> pseudo-random Uint8Array
//   T.patternByte(position, seed)         (the byte T.pattern puts at a position)
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

export const PAGE_HELPERS = String.raw`
'use strict'
window.T = (() => {
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const enc = (s) => encoder.encode(s)
  const dec = (b) => decoder.decode(b)
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  function hexToBytes(hex) {
    const out = new Uint8Array(hex.length / 2)
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16)
    return out
  }
  function toBase64(bytes) {
    let s = ''
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000))
    return btoa(s)
  }
  function timeout(promise, ms, what) {
    let timer
    return Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('page timeout after ' + ms + ' ms: ' + what)), ms)
      }),
    ]).finally(() => clearTimeout(timer))
  }
  function describeError(err) {
    if (err == null || typeof err !== 'object') return { name: typeof err, message: String(err) }
    return {
      name: err.name,
      message: err.message,
      source: err.source,
      streamErrorCode: err.streamErrorCode,
      string: String(err),
    }
  }
  function connect(url, hashHex, options = {}) {
    const wt = new WebTransport(url, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: hexToBytes(hashHex) }],
      ...options,
    })
    // Avoid unhandled-rejection noise; tests await these explicitly when they care.
    wt.ready.catch(() => {})
    wt.closed.catch(() => {})
    return wt
  }
  async function open(url, hashHex, options) {
    const wt = connect(url, hashHex, options)
    await timeout(wt.ready, 10_000, 'wt.ready')
    return wt
  }
  async function failure(promise, ms, what) {
    try {
      await timeout(promise, ms, what)
      return null
    } catch (err) {
      return describeError(err)
    }
  }
  async function readAll(readable) {
    const reader = readable.getReader()
    const chunks = []
    let length = 0
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      chunks.push(value)
      length += value.byteLength
    }
    const out = new Uint8Array(length)
    let offset = 0
    for (const c of chunks) {
      out.set(c, offset)
      offset += c.byteLength
    }
    return out
  }
  function patternByte(i, seed = 0) {
    let h = Math.imul((i ^ (i >>> 13) ^ seed) >>> 0, 0x5bd1e995)
    h ^= h >>> 15
    return h & 255
  }
  function pattern(length, seed = 0, start = 0) {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i++) out[i] = patternByte(start + i, seed)
    return out
  }
  async function exchange(wt, bytes, ms = 10_000, what = 'reply') {
    const stream = await wt.createBidirectionalStream()
    const reply = readAll(stream.readable)
    const writer = stream.writable.getWriter()
    await writer.write(bytes)
    await writer.close()
    return timeout(reply, ms, what)
  }
  return {
    enc, dec, sleep, hexToBytes, toBase64, timeout, describeError, failure, connect, open, readAll, exchange, patternByte, pattern,
  }
})()
`

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>webtransport-napi test page</title>
<script>${PAGE_HELPERS}</script></head><body>webtransport-napi test page</body></html>
`

/** Serves the test page over plain HTTP on 127.0.0.1 (port 0 = any free port). */
export async function startPageServer({ host = '127.0.0.1', html = PAGE_HTML } = {}) {
  const server = http.createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end(html)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address()
  let closing
  return {
    server,
    port,
    /** http://127.0.0.1:<port>/ — same host as a WebTransport server bound on 127.0.0.1. */
    sameOriginUrl: (path = '/') => `http://127.0.0.1:${port}${path}`,
    /** http://localhost:<port>/ — a different host than 127.0.0.1. */
    crossOriginUrl: (path = '/') => `http://localhost:${port}${path}`,
    close() {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections?.()
      })
      return closing
    },
  }
}

/** Launches headless Chromium with a fresh profile. Returns { context, userDataDir, newPage(url), close() }. */
export function launchBrowser({ executablePath = CHROMIUM_PATH, args = [], launchTimeout = 60_000 } = {}) {
  return launchWithProfile('wt-chromium-', async (userDataDir) => {
    // playwright refuses --user-data-dir in args, hence the persistent context.
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      timeout: launchTimeout,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        ...args,
      ],
    })
    return {
      context,
      newPage: (url) =>
        openTestPage(() => context.newPage(), url, (page) =>
          page.waitForFunction(() => typeof window.T === 'object', null, { timeout: 5_000 }),
        ),
      stop: () =>
        withTimeout(context.close(), 15_000, 'closing Chromium').catch((err) => {
          process.emitWarning(`browser.mjs: ${err.message}`)
        }),
    }
  })
}

/**
 * The browser-independent half of a launcher: makes a fresh profile dir, calls start(userDataDir) (which
 * launches the browser and returns its handle with a stop()), and removes the dir when start() fails or
 * after close(). Returns the handle with `userDataDir` and a once-only close() in place of stop().
 */
export async function launchWithProfile(prefix, start) {
  const userDataDir = await mkdtemp(join(tmpdir(), prefix))
  let handle
  try {
    handle = await start(userDataDir)
  } catch (err) {
    await removeDir(userDataDir)
    throw err
  }
  const { stop, ...rest } = handle
  let closing
  return {
    ...rest,
    userDataDir,
    close() {
      closing ??= (async () => {
        await stop()
        // The browser may still be writing to its profile for a moment after exit; removeDir retries.
        await removeDir(userDataDir)
      })()
      return closing
    },
  }
}

/**
 * A new page from createPage() that records its console output and page errors in page.logs (runInPage
 * adds them to errors); with a url, it is loaded and waitForHelpers(page) waits for `window.T`. The page
 * is closed again if loading fails.
 */
export async function openTestPage(createPage, url, waitForHelpers) {
  const page = await createPage()
  page.logs = []
  page.on('console', (msg) => page.logs.push(`[console.${msg.type()}] ${msg.text()}`))
  page.on('pageerror', (err) => page.logs.push(`[pageerror] ${err?.stack || err}`))
  if (url) {
    try {
      await page.goto(url, { timeout: 15_000 })
      await waitForHelpers(page)
    } catch (err) {
      await closePage(page)
      throw err
    }
  }
  return page
}

/** page.evaluate(fn, arg), rejected after `timeout` ms; the page's console log is added to errors. */
export async function runInPage(page, fn, arg, { timeout = 20_000, label = fn.name || 'page function' } = {}) {
  // playwright and puppeteer both pass arg as fn's first (only) argument.
  const evaluation = page.evaluate(fn, arg)
  evaluation.catch(() => {})
  try {
    return await withTimeout(evaluation, timeout, `${label} in page`)
  } catch (err) {
    const logs = page.logs?.length ? `\npage log:\n  ${page.logs.join('\n  ')}` : ''
    err.message += logs
    throw err
  }
}

export async function closePage(page) {
  await withTimeout(page.close(), 5_000, 'closing page').catch(() => {})
}

/**
 * One browser and one page server for a test file, for any launcher: `launch(options)` starts the browser
 * and returns { newPage(url), close() } (launchBrowser, or firefox.mjs's launchFirefox).
 * env.run(origin, fn, arg, options): opens a fresh page on 'same' (http://127.0.0.1:<port>/) or
 * 'cross' (http://localhost:<port>/), evaluates fn(arg) there, closes the page, returns the result.
 * env.close(): closes the browser, then the page server.
 */
export async function createBrowserEnv(launch, options = {}) {
  const pages = await startPageServer()
  let browser
  try {
    browser = await launch(options)
  } catch (err) {
    await pages.close()
    throw err
  }
  let closing
  return {
    browser,
    pages,
    sameOriginUrl: pages.sameOriginUrl,
    crossOriginUrl: pages.crossOriginUrl,
    async run(origin, fn, arg, runOptions = {}) {
      const url = origin === 'cross' ? pages.crossOriginUrl() : pages.sameOriginUrl()
      const page = await browser.newPage(url)
      try {
        return await runInPage(page, fn, arg, runOptions)
      } finally {
        await closePage(page)
      }
    },
    close() {
      closing ??= (async () => {
        await browser.close()
        await pages.close()
      })()
      return closing
    },
  }
}

/** One Chromium and one page server for a test file (see createBrowserEnv). */
export function startBrowserEnv(options = {}) {
  return createBrowserEnv(launchBrowser, options)
}

export function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** rm -rf, retried for a second (a browser may hold its profile a moment after exit); warns if it fails. */
export async function removeDir(dir) {
  for (let attempt = 0; ; attempt++) {
    try {
      await rm(dir, { recursive: true, force: true })
      return
    } catch (err) {
      if (attempt >= 5) {
        process.emitWarning(`browser.mjs: could not remove ${dir}: ${err.message}`)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}
