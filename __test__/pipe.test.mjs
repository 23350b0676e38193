// `readable.pipeTo(writable)` between two of the library's streams runs natively (no JS per
// chunk). These tests hold it to what WHATWG `pipeTo` promises, against the independent Rust
// client (tools/wt-client): every byte and the FIN arrive; the promise resolves with both streams
// closed and unlocked; a reset of the source reaches the destination as a reset with the same
// code and a stop of the destination reaches the source as a stop with the same code, each
// rejecting the promise with that WebTransportError. Options the native pipe does not take
// (a signal, preventClose, ...) and pipes from other streams go through Node's own pipe.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { Server, generateCertificate, WebTransportError } from '../index.js'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

// Counts the pipes that went through Node's own ReadableStream.prototype.pipeTo (which the
// library's streams fall back to), to tell the native path from Node's.
const nodePipeTo = ReadableStream.prototype.pipeTo
let nodePipes = 0
ReadableStream.prototype.pipeTo = function (...args) {
  nodePipes++
  return nodePipeTo.apply(this, args)
}

let server
let handle
/** One record per piped stream: how its pipeTo settled and the streams' state afterwards. */
const outcomes = []

/** How each path's session handles a bidirectional stream. */
const handlers = {
  // The native pipe.
  '/pipe': (stream) => stream.readable.pipeTo(stream.writable),
  // Options the native pipe does not honour: Node's pipe.
  '/signal': (stream) => stream.readable.pipeTo(stream.writable, { signal: new AbortController().signal }),
  // A Node TransformStream in between: Node's pipe on both legs.
  '/transform': (stream) => stream.readable.pipeThrough(new TransformStream()).pipeTo(stream.writable),
  // The first chunk read in JS, then the rest piped natively: nothing lost or reordered.
  '/read-then-pipe': async (stream) => {
    const reader = stream.readable.getReader()
    const first = await reader.read()
    reader.releaseLock()
    if (first.done) return stream.writable.close()
    const writer = stream.writable.getWriter()
    await writer.write(first.value)
    writer.releaseLock()
    return stream.readable.pipeTo(stream.writable)
  },
}

async function afterPipe(stream, settled) {
  const record = { ...settled, readableLocked: stream.readable.locked, writableLocked: stream.writable.locked }
  if (!record.readableLocked) {
    const reader = stream.readable.getReader()
    record.readableState = await reader.read().then(
      ({ done }) => (done ? 'closed' : 'open'),
      () => 'errored',
    )
    reader.releaseLock()
  }
  if (!record.writableLocked) {
    const writer = stream.writable.getWriter()
    record.writableState = await Promise.race([
      writer.closed.then(
        () => 'closed',
        () => 'errored',
      ),
      new Promise((resolve) => setTimeout(() => resolve('open'), 100)),
    ])
    writer.releaseLock()
  }
  return record
}

before(async () => {
  assertClientBuilt()
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  server.on('session', async (session) => {
    session.closed.catch(() => {})
    const late = session.request.path === '/late'
    // '/late': the session's streams are made on first access; a stream that arrived before
    // then must still be there.
    if (late) await new Promise((resolve) => setTimeout(resolve, 500))
    const handler = handlers[late ? '/pipe' : session.request.path]
    try {
      for await (const stream of session.incomingBidirectionalStreams) {
        Promise.resolve()
          .then(() => handler(stream))
          .then(
            () => ({ path: session.request.path, status: 'resolved' }),
            (error) => ({
              path: session.request.path,
              status: 'rejected',
              isWebTransportError: error instanceof WebTransportError,
              code: error.code,
              streamErrorCode: error.streamErrorCode,
            }),
          )
          .then((settled) => afterPipe(stream, settled))
          .then((record) => outcomes.push(record))
      }
    } catch {}
  })
  await server.ready
  const { port } = server.address()
  handle = {
    url: (path) => `https://127.0.0.1:${port}${path}`,
    hashHex: Buffer.from(certificate.hash.value).toString('hex'),
  }
})

after(async () => {
  await server?.close()
})

/** Waits until `count` more outcomes than `from` are recorded (or 5 s), then returns the new ones. */
async function newOutcomes(from, count) {
  const deadline = Date.now() + 5000
  while (outcomes.length < from + count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  return outcomes.slice(from)
}

/** Which paths pipe natively: the others use Node's pipe at least once per stream. */
const native = { '/pipe': true, '/signal': false, '/transform': false, '/read-then-pipe': true }

for (const path of Object.keys(handlers)) {
  test(`${path}: bytes and FIN arrive, pipeTo resolves, both streams end closed and unlocked`, async () => {
    const from = outcomes.length
    const nodePipesBefore = nodePipes
    for (const bytes of ['0', '1000', '300000']) {
      const out = assertClientOk(await runWtClient(handle, ['bidi-echo', bytes], { path }))
      assert.equal(out.received, Number(bytes))
      assert.equal(out.match, true)
    }
    const bulk = assertClientOk(await runWtClient(handle, ['bulk', '10000000'], { path, timeoutMs: 60_000 }))
    assert.equal(bulk.received, 10_000_000)
    assert.equal(bulk.match, true)
    const seen = await newOutcomes(from, 4)
    assert.equal(seen.length, 4)
    if (native[path]) assert.equal(nodePipes, nodePipesBefore, `${path} must not use Node's pipe`)
    else assert.ok(nodePipes >= nodePipesBefore + 4, `${path} uses Node's pipe`)
    for (const record of seen) {
      assert.deepEqual(record, {
        path,
        status: 'resolved',
        readableLocked: false,
        writableLocked: false,
        readableState: 'closed',
        writableState: 'closed',
      })
    }
  })
}

test('/late: a stream opened before the app first reads incomingBidirectionalStreams is echoed', async () => {
  const from = outcomes.length
  const out = assertClientOk(await runWtClient(handle, ['bidi-echo', '1000'], { path: '/late' }))
  assert.equal(out.received, 1000)
  assert.equal(out.match, true)
  const [record] = await newOutcomes(from, 1)
  assert.equal(record.status, 'resolved')
})

const CODES = [0, 7, 4294967295]

for (const path of ['/pipe', '/signal']) {
  test(`${path}: a reset and a stop are passed on with their codes, and pipeTo rejects with them`, async () => {
    const from = outcomes.length
    const nodePipesBefore = nodePipes
    const out = assertClientOk(await runWtClient(handle, ['pipe-errors', CODES.join(',')], { path, timeoutMs: 30_000 }))
    // The native pipe and Node's give the same results.
    assert.equal(nodePipes === nodePipesBefore, native[path])
    // The client's checks: its reset came back as the server's reset, its stop as the server's stop.
    assert.deepEqual(out.resets.map((r) => r.serverAbortAfter.decoded), CODES)
    assert.deepEqual(out.stops.map((s) => [s.error, s.decoded]), CODES.map((c) => ['Stopped', c]))
    const seen = await newOutcomes(from, CODES.length * 2)
    const summary = seen.map((r) => `${r.code}:${r.streamErrorCode}`).sort()
    const expected = CODES.flatMap((c) => [`WT_ERR_STREAM_RESET:${c}`, `WT_ERR_STREAM_STOPPED:${c}`]).sort()
    assert.deepEqual(summary, expected)
    for (const record of seen) {
      assert.equal(record.status, 'rejected')
      assert.equal(record.isWebTransportError, true)
      assert.equal(record.readableLocked, false)
      assert.equal(record.writableLocked, false)
      // Whichever side failed first, pipeTo leaves neither stream usable.
      assert.notEqual(record.readableState, 'open')
      assert.notEqual(record.writableState, 'open')
    }
  })
}

test('/pipe: locked streams reject pipeTo as Node does; a running pipe holds both locks; one that ends within the call holds none', async () => {
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  const local = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  const results = { '/running': [], '/arrived': [] }
  local.on('session', async (session) => {
    session.closed.catch(() => {})
    const path = session.request.path
    const seen = results[path]
    for await (const { readable, writable } of session.incomingBidirectionalStreams) {
      if (path === '/running') {
        // 10 MB cannot all have arrived (QUIC flow control holds the client to 2 MiB ahead), so
        // this pipe is still running when pipeTo returns.
        const reader = readable.getReader()
        seen.push(await readable.pipeTo(writable).then(() => 'resolved', (e) => e.constructor.name))
        reader.releaseLock()
        const piping = readable.pipeTo(writable)
        seen.push(`locked ${readable.locked} ${writable.locked}`)
        seen.push(await readable.pipeTo(writable).then(() => 'resolved', (e) => e.constructor.name))
        seen.push(await piping.then(() => 'resolved', (e) => e.constructor.name))
      } else {
        // By now the client's 1000 bytes and FIN are here: the native pipe ends within the call.
        await new Promise((resolve) => setTimeout(resolve, 300))
        const piping = readable.pipeTo(writable)
        seen.push(`locked ${readable.locked} ${writable.locked}`)
        seen.push(await piping.then(() => 'resolved', (e) => e.constructor.name))
        const reader = readable.getReader()
        seen.push(await reader.read().then(({ done }) => (done ? 'closed' : 'open')))
      }
    }
  })
  await local.ready
  try {
    const { port } = local.address()
    const target = { url: (p) => `https://127.0.0.1:${port}${p}`, hashHex: Buffer.from(certificate.hash.value).toString('hex') }
    const running = assertClientOk(await runWtClient(target, ['bidi-echo', '10000000'], { path: '/running', timeoutMs: 60_000 }))
    assert.equal(running.match, true)
    const arrived = assertClientOk(await runWtClient(target, ['bidi-echo', '1000'], { path: '/arrived' }))
    assert.equal(arrived.match, true)
    const deadline = Date.now() + 5000
    while (results['/running'].length + results['/arrived'].length < 9 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10))
    }
    assert.deepEqual(results, {
      '/running': ['TypeError', 'locked true true', 'TypeError', 'resolved'],
      '/arrived': ['locked false false', 'resolved', 'closed'],
    })
  } finally {
    await local.close()
  }
})

test('the streams are transferable like any WHATWG stream: a bidi stream transferred with structuredClone echoes through the copies', async () => {
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  const local = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  const seen = []
  local.on('session', async (session) => {
    session.closed.catch(() => {})
    for await (const { readable, writable } of session.incomingBidirectionalStreams) {
      const [copyReadable, copyWritable] = structuredClone([readable, writable], { transfer: [readable, writable] })
      seen.push({
        copies: [copyReadable.constructor.name, copyWritable.constructor.name],
        originalsLocked: [readable.locked, writable.locked],
        piped: await copyReadable.pipeTo(copyWritable).then(() => 'resolved', (e) => e.code ?? e.name),
      })
    }
  })
  await local.ready
  try {
    const { port } = local.address()
    const target = { url: (p) => `https://127.0.0.1:${port}${p}`, hashHex: Buffer.from(certificate.hash.value).toString('hex') }
    const out = assertClientOk(await runWtClient(target, ['bidi-echo', '300000'], { path: '/transferred' }))
    assert.equal(out.received, 300_000)
    assert.equal(out.match, true)
    assert.deepEqual(seen, [{ copies: ['ReadableStream', 'WritableStream'], originalsLocked: [true, true], piped: 'resolved' }])
  } finally {
    await local.close()
  }
})
