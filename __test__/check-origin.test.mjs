// The checkOrigin option, driven by headless Chromium (through playwright-core).
// One echo server whose checkOrigin behaves according to the request path (/co/<mode>/<id>), so that
// after a misbehaving callback the same server is shown to still accept a following good request.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startEchoServer } from './support/echo-server.mjs'
import { startBrowserEnv, withTimeout } from './support/browser.mjs'

const CALLBACK_TIMEOUT = 300
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const modes = {
  'sync-true': () => true,
  'sync-false': () => false,
  'async-true': async () => {
    await sleep(20)
    return true
  },
  'async-false': async () => {
    await sleep(20)
    return false
  },
  throws: () => {
    throw new Error('checkOrigin throws on purpose')
  },
  rejects: async () => {
    await sleep(10)
    throw new Error('checkOrigin rejects on purpose')
  },
  junk: () => 'yes',
  hang: () => new Promise(() => {}),
}

const calls = []
function checkOrigin(origin, request) {
  calls.push({ origin, request })
  const mode = String(request?.path ?? '').split('/')[2]
  const behave = modes[mode]
  if (!behave) throw new Error(`test bug: no checkOrigin mode in ${request?.path}`)
  return behave(origin, request)
}

let echo
let env

before(async () => {
  echo = await startEchoServer({ checkOrigin, callbackTimeout: CALLBACK_TIMEOUT })
  env = await startBrowserEnv()
})

after(async () => {
  await env?.close()
  await withTimeout(echo?.close() ?? Promise.resolve(), 10_000, 'closing the echo server')
})

const pathFor = (mode) => `/co/${mode}/${randomUUID()}`

// In the page: connect, wait for ready, then (if ready) echo a few bytes on a bidi stream.
async function tryConnect({ url, hashHex }) {
  const started = performance.now()
  const wt = T.connect(url, hashHex)
  try {
    await T.timeout(wt.ready, 10_000, 'wt.ready')
  } catch (err) {
    return { origin: location.origin, ready: false, error: T.describeError(err), ms: performance.now() - started }
  }
  try {
    const stream = await wt.createBidirectionalStream()
    const reply = T.readAll(stream.readable)
    const writer = stream.writable.getWriter()
    await writer.write(T.enc('still alive'))
    await writer.close()
    const echoed = T.dec(await T.timeout(reply, 10_000, 'echo'))
    wt.close()
    return { origin: location.origin, ready: true, echoed, ms: performance.now() - started }
  } catch (err) {
    return { origin: location.origin, ready: true, echoError: T.describeError(err) }
  }
}

/** Runs a page against `mode`, recording the server's 'session' and 'requestError' events meanwhile. */
async function attempt(origin, mode) {
  const path = pathFor(mode)
  const sessions = []
  const requestErrors = []
  const onSession = (session) => sessions.push(session.request?.path)
  const onRequestError = (err, request) => requestErrors.push({ err, request })
  echo.server.on('session', onSession)
  echo.server.on('requestError', onRequestError)
  try {
    const result = await env.run(origin, tryConnect, { url: echo.url(path), hashHex: echo.hashHex })
    // Let late events arrive.
    const until = Date.now() + 300
    while (Date.now() < until && requestErrors.length === 0 && !result.ready) await sleep(20)
    await sleep(100)
    return { path, result, sessions, requestErrors, calls: calls.filter((c) => c.request?.path === path) }
  } finally {
    echo.server.off('session', onSession)
    echo.server.off('requestError', onRequestError)
  }
}

function assertAccepted({ path, result, sessions, requestErrors }) {
  assert.equal(result.ready, true, `wt.ready rejected: ${JSON.stringify(result.error)}`)
  assert.equal(result.echoError, undefined, `echo failed: ${JSON.stringify(result.echoError)}`)
  assert.equal(result.echoed, 'still alive')
  assert.deepEqual(sessions, [path])
  assert.deepEqual(requestErrors.map((e) => e.err?.message), [])
}

function assertRefused({ path, result, sessions }) {
  assert.equal(result.ready, false, 'wt.ready resolved for a request checkOrigin should refuse')
  assert.doesNotMatch(result.error.message, /page timeout/, 'wt.ready neither resolved nor rejected')
  assert.deepEqual(sessions, [], "the server emitted 'session' for a refused request")
  assert.equal(echo.sessions.some((s) => s.request?.path === path), false)
}

function assertRequestError({ path, requestErrors }) {
  assert.equal(requestErrors.length, 1, `expected one 'requestError', got ${requestErrors.length}`)
  const [{ err, request }] = requestErrors
  assert.ok(err instanceof Error, `requestError argument is not an Error: ${err}`)
  assert.equal(typeof err.code, 'string', `requestError error has no code: ${err}`)
  assert.ok(err.code.startsWith('WT_ERR_'), `unexpected code ${err.code}`)
  assert.equal(request?.path, path, "the 'requestError' request is not the refused one")
}

async function assertStillServes() {
  const good = await attempt('same', 'sync-true')
  assertAccepted(good)
}

test('sync true accepts a cross-origin page', { timeout: 30_000 }, async () => {
  const a = await attempt('cross', 'sync-true')
  assert.match(a.result.origin, /^http:\/\/localhost:\d+$/)
  assertAccepted(a)
  assert.equal(a.calls.length, 1, 'checkOrigin should be called once per request')
  assert.equal(a.calls[0].origin, a.result.origin, 'checkOrigin got another origin than the page')
  assert.equal(a.calls[0].request.authority, `127.0.0.1:${echo.port}`)
})

test('sync false refuses a same-origin page', { timeout: 30_000 }, async () => {
  const a = await attempt('same', 'sync-false')
  assert.match(a.result.origin, /^http:\/\/127\.0\.0\.1:\d+$/)
  assertRefused(a)
  assert.equal(a.calls.length, 1)
  assert.deepEqual(a.requestErrors.map((e) => e.err?.message), [], "a plain refusal is not a 'requestError'")
  await assertStillServes()
})

test('async true accepts a cross-origin page', { timeout: 30_000 }, async () => {
  const a = await attempt('cross', 'async-true')
  assertAccepted(a)
})

test('async false refuses a same-origin page', { timeout: 30_000 }, async () => {
  const a = await attempt('same', 'async-false')
  assertRefused(a)
  assert.deepEqual(a.requestErrors.map((e) => e.err?.message), [], "a plain refusal is not a 'requestError'")
  await assertStillServes()
})

for (const [mode, title] of [
  ['throws', 'a checkOrigin that throws'],
  ['rejects', 'a checkOrigin that rejects'],
  ['junk', "a checkOrigin that returns a non-boolean ('yes')"],
  ['hang', `a checkOrigin that never settles (callbackTimeout ${CALLBACK_TIMEOUT} ms)`],
]) {
  test(`${title} refuses the request and emits 'requestError'; the server keeps serving`, { timeout: 30_000 }, async () => {
    const a = await attempt('same', mode)
    assertRefused(a)
    assertRequestError(a)
    if (mode === 'hang') {
      assert.ok(a.result.ms < CALLBACK_TIMEOUT + 4_000, `refused only after ${Math.round(a.result.ms)} ms`)
    }
    await assertStillServes()
  })
}
