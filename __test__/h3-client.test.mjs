// Plain HTTP/3 requests (not WebTransport) from two independent clients: tools/h3-client
// (hyperium h3 + h3-quinn, also a load generator) and aioquic's `http` scenario. Both report the
// same fields, so each case runs through both.
// Without a `fetch` option the server answers every regular request 404 with content-length 0,
// ends the response and, when the request is still arriving, asks the client to stop sending it
// (STOP_SENDING with H3_NO_ERROR, RFC 9114 §4.1): the client must still get the whole response,
// also when it resets the request itself afterwards. A short load run counts 404s.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEchoServer } from './support/echo-server.mjs'
import { assertH3ClientBuilt, assertH3ClientOk, runH3Client } from './support/h3-client.mjs'
import { runAioquic } from './support/aioquic-client.mjs'

const H3_NO_ERROR = 0x100
const H3_REQUEST_CANCELLED = 0x10c
// The server grants each request stream 2 MiB of flow-control credit (src/core/config.rs); a body
// larger than that cannot all be written before the server's STOP_SENDING arrives.
const STREAM_WINDOW = 2 * 1024 * 1024
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

let echo
let tmp
let pem

before(async () => {
  echo = await startEchoServer()
  tmp = await mkdtemp(join(tmpdir(), 'wt-h3-client-'))
  pem = join(tmp, 'cert.pem')
  await writeFile(pem, echo.certificate.cert)
})

after(async () => {
  if (echo) await echo.closeWithin()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

/** The options both clients take for one request (`request` mode, `http` scenario). */
function requestArgs({ method, path = '/', bodyBytes, headers = [], resetAfter, resetDelayMs }) {
  const args = ['--method', method, '--path', path, ...headers.flatMap((h) => ['--header', h])]
  if (bodyBytes !== undefined) args.push('--body-bytes', String(bodyBytes))
  if (resetAfter !== undefined) args.push('--reset-after', String(resetAfter))
  if (resetDelayMs !== undefined) args.push('--reset-delay-ms', String(resetDelayMs))
  return args
}

/** One request through either client, as { json, code, context }: both print the same fields. */
const CLIENTS = {
  h3: async (request) => {
    assertH3ClientBuilt()
    const result = await runH3Client(echo, ['request', ...requestArgs(request)])
    const detail = `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
    return { json: result.json, code: result.code, context: detail }
  },
  aioquic: async (request) => {
    const { result, code, context } = await runAioquic(echo, 'http', { pem, args: requestArgs(request) })
    return { json: result, code, context }
  },
}

/** A complete, empty 404 answer, read to its end with no error on either side. */
function assertEmpty404(json, code, context) {
  assert.ok(json, `no JSON: ${context}`)
  assert.equal(json.ok, true, context)
  assert.equal(code, 0, context)
  assert.equal(json.status, 404, context)
  assert.equal(json.headers['content-length'], '0', context)
  assert.equal(json.bodyLength, 0, context)
  assert.equal(json.bodySha256, EMPTY_SHA256, context)
  assert.equal(json.responseComplete, true, context)
  assert.equal(json.responseResetCode, null, context)
  assert.equal(json.recvError, null, context)
  assert.equal(json.trailers, null, context)
  assert.equal(json.sendError, null, context)
  assert.equal(json.sendAbandoned, false, context)
}

for (const [name, run] of Object.entries(CLIENTS)) {
  test(`${name}: GET / without fetch is 404 with content-length 0`, async () => {
    const { json, code, context } = await run({ method: 'GET' })
    assertEmpty404(json, code, context)
    assert.equal(json.method, 'GET', context)
    assert.equal(json.requestFinished, true, context)
    assert.equal(json.sentBytes, 0, context)
    assert.equal(json.bodyEqualsSent, null, context)
    assert.equal(json.resetSent, null, context)
  })

  test(`${name}: HEAD on another path is 404 with content-length 0 and no body`, async () => {
    const { json, code, context } = await run({ method: 'HEAD', path: '/some/where?x=1' })
    assertEmpty404(json, code, context)
    assert.equal(json.method, 'HEAD', context)
    assert.equal(json.path, '/some/where?x=1', context)
  })

  test(`${name}: POST with a 1 MiB body is answered 404 whole, the body sent or stopped with H3_NO_ERROR`, async () => {
    const bodyBytes = 1024 * 1024
    const { json, code, context } = await run({ method: 'POST', bodyBytes, headers: [`content-length:${bodyBytes}`] })
    assertEmpty404(json, code, context)
    // 1 MiB fits in the server's stream window, so whether the whole body and its FIN leave
    // before the server's STOP_SENDING arrives is a race; either way nothing is an error, and a
    // stop says H3_NO_ERROR.
    if (json.stopSendingCode !== null) assert.equal(json.stopSendingCode, H3_NO_ERROR, context)
    assert.ok(json.requestFinished || json.stopSendingCode === H3_NO_ERROR, context)
    if (json.requestFinished) assert.equal(json.sentBytes, bodyBytes, context)
    assert.ok(json.sentBytes <= bodyBytes, context)
    assert.equal(json.bodyEqualsSent, false, context)
    assert.equal(json.resetSent, null, context)
  })

  test(`${name}: POST with a body beyond the stream window is stopped with H3_NO_ERROR after a whole 404`, async () => {
    const bodyBytes = 4 * STREAM_WINDOW
    const { json, code, context } = await run({ method: 'POST', bodyBytes })
    assertEmpty404(json, code, context)
    // The server never reads the body, so no credit beyond its window: the client is stopped.
    assert.equal(json.stopSendingCode, H3_NO_ERROR, context)
    assert.equal(json.requestFinished, false, context)
    assert.ok(json.sentBytes < bodyBytes, context)
    assert.equal(json.resetSent, null, context)
  })

  test(`${name}: a request reset mid-body after the server's 404: the 404 stands`, async () => {
    // The pause lets the server read the headers and answer before the reset reaches it (a reset
    // in the same packet as the headers would discard them).
    const { json, code, context } = await run({ method: 'PUT', bodyBytes: 1 << 20, resetAfter: 65536, resetDelayMs: 100 })
    assertEmpty404(json, code, context)
    assert.equal(json.sentBytes, 65536, context)
    assert.equal(json.requestFinished, false, context)
    assert.equal(json.responseWaitTimedOut, false, context)
    // Without fetch the server stops the body at once. quinn (under h3) records the STOP_SENDING
    // and still sends the client's own RESET_STREAM; aioquic has answered it with a RESET_STREAM
    // carrying the stop's code (RFC 9000 §3.5), so its own reset never goes out. (With a server
    // that reads the body, both send H3_REQUEST_CANCELLED.)
    if (name === 'h3') {
      assert.equal(json.resetSent, H3_REQUEST_CANCELLED, context)
    } else {
      assert.equal(json.stopSendingCode, H3_NO_ERROR, context)
      assert.equal(json.resetSent, null, context)
    }
  })
}

test('h3: the certificate pin is checked, and a CA PEM is an alternative to it', async () => {
  assertH3ClientBuilt()
  const wrong = `${echo.hashHex.slice(0, -2)}${echo.hashHex.endsWith('00') ? '01' : '00'}`
  const refused = await runH3Client(echo, ['request', '--path', '/'], { trust: ['--cert-hash', wrong] })
  assert.equal(refused.code, 1, refused.stdout)
  assert.equal(refused.json?.ok, false, refused.stdout)
  assert.equal(refused.json.status, undefined, refused.stdout)
  assert.match(refused.json.error, new RegExp(`server certificate SHA-256 ${echo.hashHex}`), refused.stdout)

  const json = assertH3ClientOk(await runH3Client(echo, ['request', '--path', '/'], { trust: ['--ca', pem] }))
  assert.equal(json.status, 404)
})

test('h3 load: 500 small GETs over one connection, all answered 404, no errors', async () => {
  assertH3ClientBuilt()
  const args = ['load', '--path', '/', '--concurrency', '8', '--requests', '500', '--duration-ms', '5000']
  const json = assertH3ClientOk(await runH3Client(echo, [...args, '--expect-status', '404']))
  assert.equal(json.stoppedBy, 'count', JSON.stringify(json))
  assert.equal(json.completed, 500, JSON.stringify(json))
  assert.equal(json.errors, 0, JSON.stringify(json))
  assert.deepEqual(json.statuses, { 404: 500 }, JSON.stringify(json))
  assert.equal(json.unexpectedStatus, 0, JSON.stringify(json))
  assert.ok(json.requestsPerSecond > 0, JSON.stringify(json))
  const { p50, p99, max } = json.latencyMs
  assert.ok(p50 > 0 && p50 <= p99 && p99 <= max, JSON.stringify(json))
})

test('h3 load: bounded by --duration-ms over two connections when the count is out of reach', async () => {
  assertH3ClientBuilt()
  const args = ['load', '--path', '/', '--concurrency', '4', '--connections', '2', '--requests', '100000000']
  const json = assertH3ClientOk(await runH3Client(echo, [...args, '--duration-ms', '1000', '--expect-status', '404']))
  assert.equal(json.stoppedBy, 'duration', JSON.stringify(json))
  assert.equal(json.connections, 2, JSON.stringify(json))
  assert.ok(json.completed > 0 && json.completed < 100000000, JSON.stringify(json))
  assert.equal(json.errors, 0, JSON.stringify(json))
  // The last requests started before the deadline end within their own few ms.
  assert.ok(json.seconds >= 1 && json.seconds < 3, JSON.stringify(json))
})
