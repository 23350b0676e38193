// The `fetch` option (regular HTTP/3 requests as WHATWG Request/Response) from two independent
// clients, tools/h3-client (hyperium h3 + h3-quinn) and aioquic's `http` scenario; each case runs
// through both: a text GET, a 10 MiB GET byte-exact, a 10 MiB POST echoed byte-exact, HEAD and
// 204 without a body, 500 from a throwing handler (with 'requestError'), 503 from one that never
// answers within callbackTimeout, 500 for a result that is no Response, 413 past
// maxRequestBodySize, and a request reset mid-body aborting `request.signal`.
// (404 without `fetch`: h3-client.test.mjs.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEchoServer } from './support/echo-server.mjs'
import { assertH3ClientBuilt, runH3Client } from './support/h3-client.mjs'
import { runAioquic } from './support/aioquic-client.mjs'

const BIG = 10 * 1024 * 1024
const LIMIT = 100_000
const big = Buffer.alloc(BIG)
for (let i = 0; i < BIG; i++) big[i] = (i * 31 + 7) & 0xff
const BIG_SHA256 = createHash('sha256').update(big).digest('hex')

/** What the `/hold` handler saw of its request, by the x-case header the test sends. */
const held = new Map()
const requestErrors = []

async function app(request, info) {
  const url = new URL(request.url)
  switch (url.pathname) {
    case '/text':
      return new Response(`hello ${request.method} from ${info.remoteAddress}`, { headers: { 'content-type': 'text/plain', 'x-port': String(info.remotePort) } })
    case '/big': {
      let offset = 0
      // Streamed in pieces, pulled as QUIC takes them.
      const body = new ReadableStream({
        pull(controller) {
          if (offset >= BIG) return controller.close()
          const end = Math.min(offset + 64 * 1024, BIG)
          controller.enqueue(big.subarray(offset, end))
          offset = end
        },
      })
      return new Response(body, { headers: { 'content-length': String(BIG) } })
    }
    case '/echo':
      return new Response(request.body, { headers: { 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' } })
    case '/empty':
      return new Response(null, { status: 204 })
    case '/throw':
      throw new Error('handler bug')
    case '/never':
      return new Promise(() => {})
    case '/not-a-response':
      return 'just text'
    case '/hold': {
      const seen = { aborted: false, reason: null, readError: null, bytes: 0 }
      held.set(request.headers.get('x-case'), seen)
      request.signal.addEventListener('abort', () => {
        seen.aborted = true
        seen.reason = request.signal.reason
      })
      const reader = request.body.getReader()
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          seen.bytes += value.byteLength
        }
      } catch (error) {
        seen.readError = error
      }
      return new Response('held')
    }
    default:
      return new Response('not here', { status: 404 })
  }
}

let server
let limited
let tmp

before(async () => {
  server = await startEchoServer({ fetch: app })
  server.server.on('requestError', (error, request) => requestErrors.push({ error, request }))
  limited = await startEchoServer({ fetch: app, maxRequestBodySize: LIMIT, callbackTimeout: 300 })
  limited.server.on('requestError', (error, request) => requestErrors.push({ error, request }))
  tmp = await mkdtemp(join(tmpdir(), 'wt-fetch-'))
  for (const s of [server, limited]) {
    s.pem = join(tmp, `cert-${s.port}.pem`)
    await writeFile(s.pem, s.certificate.cert)
  }
})

after(async () => {
  if (server) await server.closeWithin()
  if (limited) await limited.closeWithin()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

function requestArgs({ method, path, bodyBytes, headers = [], resetAfter }) {
  const args = ['--method', method, '--path', path, ...headers.flatMap((h) => ['--header', h])]
  if (bodyBytes !== undefined) args.push('--body-bytes', String(bodyBytes))
  if (resetAfter !== undefined) args.push('--reset-after', String(resetAfter))
  return args
}

/** One request through either client, as { json, code, context }. */
const CLIENTS = {
  h3: async (target, request) => {
    assertH3ClientBuilt()
    const result = await runH3Client(target, ['request', ...requestArgs(request)], { timeoutMs: 30_000 })
    return { json: result.json, code: result.code, context: `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}` }
  },
  aioquic: async (target, request) => {
    const { result, code, context } = await runAioquic(target, 'http', { pem: target.pem, args: requestArgs(request), timeoutS: 30 })
    return { json: result, code, context }
  },
}

function assertComplete(json, code, context, status) {
  assert.ok(json, `no JSON: ${context}`)
  assert.equal(json.status, status, context)
  assert.equal(json.responseComplete, true, context)
  assert.equal(json.responseResetCode, null, context)
  assert.equal(json.ok, true, context)
  assert.equal(code, 0, context)
}

for (const [name, run] of Object.entries(CLIENTS)) {
  test(`${name}: GET text from fetch, with info`, async () => {
    const { json, code, context } = await run(server, { method: 'GET', path: '/text' })
    assertComplete(json, code, context, 200)
    assert.equal(json.headers['content-type'], 'text/plain', context)
    const expected = Buffer.from('hello GET from 127.0.0.1')
    assert.equal(json.bodyLength, expected.length, context)
    assert.equal(json.bodySha256, createHash('sha256').update(expected).digest('hex'), context)
    assert.ok(Number(json.headers['x-port']) > 0, context)
  })

  test(`${name}: GET of a 10 MiB streamed body arrives byte-exact`, async () => {
    const { json, code, context } = await run(server, { method: 'GET', path: '/big' })
    assertComplete(json, code, context, 200)
    assert.equal(json.headers['content-length'], String(BIG), context)
    assert.equal(json.bodyLength, BIG, context)
    assert.equal(json.bodySha256, BIG_SHA256, context)
  })

  test(`${name}: POST of a 10 MiB streamed body is echoed byte-exact`, async () => {
    const { json, code, context } = await run(server, { method: 'POST', path: '/echo', bodyBytes: BIG })
    assertComplete(json, code, context, 200)
    assert.equal(json.sentBytes, BIG, context)
    assert.equal(json.bodyLength, BIG, context)
    assert.equal(json.bodyEqualsSent, true, context)
    assert.equal(json.bodySha256, json.sentSha256, context)
  })

  test(`${name}: HEAD gets the head and no body; 204 no body`, async () => {
    const head = await run(server, { method: 'HEAD', path: '/text' })
    assertComplete(head.json, head.code, head.context, 200)
    assert.equal(head.json.bodyLength, 0, head.context)
    assert.equal(head.json.headers['content-type'], 'text/plain', head.context)
    const empty = await run(server, { method: 'GET', path: '/empty' })
    assertComplete(empty.json, empty.code, empty.context, 204)
    assert.equal(empty.json.bodyLength, 0, empty.context)
  })

  test(`${name}: a throwing fetch gives 500 and 'requestError' with the Request`, async () => {
    const before = requestErrors.length
    const { json, code, context } = await run(server, { method: 'GET', path: '/throw' })
    assertComplete(json, code, context, 500)
    assert.equal(json.bodyLength, 0, context)
    assert.equal(requestErrors.length, before + 1, context)
    const { error, request } = requestErrors.at(-1)
    assert.equal(error.code, 'WT_ERR_CALLBACK_FAILED')
    assert.match(error.message, /handler bug/)
    assert.ok(request instanceof Request)
    assert.equal(new URL(request.url).pathname, '/throw')
  })

  test(`${name}: a fetch that never answers gets 503, one that returns no Response 500, each with 'requestError'`, async () => {
    let before = requestErrors.length
    const slow = await run(limited, { method: 'GET', path: '/never' })
    assertComplete(slow.json, slow.code, slow.context, 503)
    assert.equal(requestErrors.length, before + 1, slow.context)
    assert.equal(requestErrors.at(-1).error.code, 'WT_ERR_CALLBACK_TIMEOUT')
    before = requestErrors.length
    const wrong = await run(limited, { method: 'GET', path: '/not-a-response' })
    assertComplete(wrong.json, wrong.code, wrong.context, 500)
    assert.equal(requestErrors.length, before + 1, wrong.context)
    assert.equal(requestErrors.at(-1).error.code, 'WT_ERR_CALLBACK_INVALID_RESULT')
  })

  test(`${name}: a body past maxRequestBodySize gets 413, declared or streamed`, async () => {
    const declared = await run(limited, { method: 'POST', path: '/echo', bodyBytes: LIMIT * 3, headers: [`content-length:${LIMIT * 3}`] })
    assert.equal(declared.json?.status, 413, declared.context)
    const streamed = await run(limited, { method: 'POST', path: '/hold', bodyBytes: LIMIT * 3, headers: [`x-case:${name}-413`] })
    assert.equal(streamed.json?.status, 413, streamed.context)
    const seen = held.get(`${name}-413`)
    assert.equal(seen?.readError?.code, 'WT_ERR_BODY_TOO_LARGE', streamed.context)
    assert.ok(seen.bytes <= LIMIT, streamed.context)
    const within = await run(limited, { method: 'POST', path: '/echo', bodyBytes: LIMIT - 10 })
    assertComplete(within.json, within.code, within.context, 200)
    assert.equal(within.json.bodyEqualsSent, true, within.context)
  })

  test(`${name}: a request reset mid-body aborts request.signal and errors its body`, async () => {
    const key = `${name}-reset`
    const { json, context } = await run(server, { method: 'POST', path: '/hold', bodyBytes: 4 * 1024 * 1024, resetAfter: 200_000, headers: [`x-case:${key}`] })
    assert.ok(json, context)
    const deadline = Date.now() + 5000
    while (!held.get(key)?.aborted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    const seen = held.get(key)
    assert.ok(seen, `the handler saw the request: ${context}`)
    assert.equal(seen.aborted, true, `request.signal aborted: ${context}`)
    assert.equal(seen.readError?.code, 'WT_ERR_STREAM_RESET', context)
    assert.ok(seen.bytes < 4 * 1024 * 1024, context)
  })
}

// A GET's request body is never read: its QUIC stream must still be let go of when the exchange
// ends, not when GC collects it, or one connection stalls after its 100 concurrent streams (found
// by the bench's http mode: ~100 GETs, then nothing until a collection).
test('h3: 1,000 sequential GETs on one connection, none waiting on GC', async () => {
  assertH3ClientBuilt()
  const body = createHash('sha256').update('hello GET from 127.0.0.1').digest('hex')
  const args = ['load', '--path', '/text', '--concurrency', '1', '--requests', '1000', '--duration-ms', '20000']
  args.push('--request-timeout-ms', '3000', '--expect-status', '200', '--expect-body-sha256', body)
  const result = await runH3Client(server, args, { timeoutMs: 30_000 })
  const context = `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  assert.equal(result.json?.ok, true, context)
  assert.equal(result.json.completed, 1000, context)
  assert.equal(result.json.unexpectedBody, 0, context)
})
