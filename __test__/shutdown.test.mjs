// Graceful shutdown under load: `server.close()` while 32 streams each way are mid-transfer,
// with an independent client (tools/wt-client on the wtransport crate) counting every byte.
// Nothing committed may be lost: every stream ends with FIN and all of its bytes, both ways, and
// only then does the session close with the server's code and reason.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Server, generateCertificate } from '../index.js'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

const STREAMS = 32
const BYTES = 256 * 1024 // per stream and direction: 8 MiB each way
const CHUNK = 16 * 1024
const CLOSE = { closeCode: 4242, reason: 'server shutting down' }

// Byte `i` of stream `s`, after its 4-byte big-endian index; the same formula as wt-client's
// `shutdown_pattern`.
function fillPattern(buf, stream, offset) {
  for (let j = 0; j < buf.length; j++) {
    const i = offset + j
    buf[j] = (i * 7 + stream * 13 + Math.floor(i / 1024)) % 251
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(condition, what, ms = 10_000) {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** Sends stream `index` of the download set; `paceMs` between chunks keeps it mid-transfer. */
async function sendDownload(session, index, { paceMs = 0, chunkSize = CHUNK }, progress) {
  const writer = (await session.createUnidirectionalStream()).getWriter()
  const head = Buffer.alloc(4)
  head.writeUInt32BE(index)
  await writer.write(head)
  for (let offset = 0; offset < BYTES; offset += chunkSize) {
    const chunk = Buffer.alloc(Math.min(chunkSize, BYTES - offset))
    fillPattern(chunk, index, offset)
    await writer.write(chunk)
    progress.written[index] = offset + chunk.length
    if (paceMs) await sleep(paceMs)
  }
  await writer.close()
  progress.finished++
}

/** Reads one client upload whole and checks every byte; records how it ended. */
async function receiveUpload(readable, progress) {
  const reader = readable.getReader()
  let header = Buffer.alloc(0)
  let index = null
  let received = 0
  let mismatch = null
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      let data = Buffer.from(value)
      if (index === null) {
        header = Buffer.concat([header, data])
        if (header.length < 4) continue
        index = header.readUInt32BE(0)
        data = header.subarray(4)
        progress.uploads.set(index, { received: 0, fin: false, error: null, mismatch: null })
      }
      const expected = Buffer.alloc(data.length)
      fillPattern(expected, index, received)
      if (mismatch === null && !expected.equals(data)) mismatch = received
      received += data.length
      Object.assign(progress.uploads.get(index), { received, mismatch })
    }
    if (index !== null) progress.uploads.get(index).fin = true
  } catch (error) {
    if (index !== null) progress.uploads.get(index).error = `${error.code}: ${error.message}`
    else progress.uploadErrors.push(error)
  }
}

async function startServer(options) {
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key, ...options })
  await server.ready
  const { port } = server.address()
  return {
    server,
    hashHex: Buffer.from(certificate.hash.value).toString('hex'),
    url: (path = '/') => `https://127.0.0.1:${port}${path}`,
  }
}

function newProgress() {
  return { written: new Array(STREAMS).fill(0), finished: 0, uploads: new Map(), uploadErrors: [], writeErrors: [] }
}

function assertUploadsWhole(progress) {
  assert.deepEqual(progress.uploadErrors, [])
  assert.equal(progress.uploads.size, STREAMS, 'every upload stream reached the server')
  for (const [index, upload] of progress.uploads) {
    assert.deepEqual(upload, { received: BYTES, fin: true, error: null, mismatch: null }, `upload ${index}`)
  }
}

test('server.close() with 32 streams each way mid-transfer: every byte arrives, every stream ends with FIN, then the close code', { timeout: 120_000 }, async () => {
  assertClientBuilt()
  const { server, ...handle } = await startServer({ closeGrace: 5_000 })
  const progress = newProgress()
  let session = null
  server.on('session', (s) => {
    session = s
    for (let i = 0; i < STREAMS; i++) {
      sendDownload(s, i, { paceMs: 3 }, progress).catch((error) => progress.writeErrors.push(error))
    }
    ;(async () => {
      for await (const readable of s.incomingUnidirectionalStreams) receiveUpload(readable, progress)
    })().catch((error) => progress.uploadErrors.push(error))
  })
  // The client paces its uploads (16 KiB every 10 ms per stream: about 160 ms each).
  const client = runWtClient(handle, ['shutdown', STREAMS, BYTES, STREAMS, BYTES, 10, CLOSE.closeCode, CLOSE.reason].map(String), {
    timeoutMs: 60_000,
  })
  // Mid-transfer both ways: every download has started and none is done; every upload has
  // started and the uploads are not done.
  await until(() => progress.written.every((n) => n > 0) && progress.uploads.size === STREAMS, 'every stream to be under way')
  const uploadedAtClose = [...progress.uploads.values()].reduce((sum, u) => sum + u.received, 0)
  const writtenAtClose = progress.written.reduce((sum, n) => sum + n, 0)
  assert.ok(progress.finished < STREAMS && writtenAtClose < STREAMS * BYTES, `downloads mid-transfer at close (${writtenAtClose} bytes written)`)
  assert.ok(uploadedAtClose < STREAMS * BYTES, `uploads mid-transfer at close (${uploadedAtClose} bytes received)`)

  const started = Date.now()
  await server.close(CLOSE)
  const closeMs = Date.now() - started

  const report = assertClientOk(await client)
  assert.equal(report.downloads, STREAMS)
  assert.equal(report.downloadsComplete, STREAMS, 'every download complete with FIN')
  assert.equal(report.downloadBytes, STREAMS * BYTES)
  assert.equal(report.uploadsComplete, STREAMS)
  assert.equal(report.code, CLOSE.closeCode)
  assert.equal(report.reason, CLOSE.reason)
  assert.deepEqual(progress.writeErrors, [], 'no server write failed')
  assert.equal(progress.finished, STREAMS)
  assertUploadsWhole(progress)
  assert.deepEqual(await session.closed, CLOSE, 'the server side saw the same close')
  // The session did not end by itself, so close() waited out the grace, and not much longer.
  assert.ok(closeMs >= 4_500 && closeMs < 12_000, `close() took ${closeMs} ms with closeGrace 5000`)
})

// Before the close waited for finished streams to be acknowledged, the capsule overtook their
// data and the client (which abandons its streams on the capsule) lost about half the streams.
test('closeGrace 0: data already written and finished is delivered before the session close', { timeout: 120_000 }, async () => {
  assertClientBuilt()
  const { server, ...handle } = await startServer({ closeGrace: 0 })
  const progress = newProgress()
  let session = null
  let committed
  const allCommitted = new Promise((resolve) => (committed = resolve))
  server.on('session', (s) => {
    session = s
    // Written as fast as QUIC takes it: the writes and FINs complete into QUIC's send buffer
    // (within the client's flow-control windows) before the client has read the bytes.
    Promise.all(Array.from({ length: STREAMS }, (_, i) => sendDownload(s, i, {}, progress))).then(committed, (error) => {
      progress.writeErrors.push(error)
      committed()
    })
  })
  const client = runWtClient(handle, ['shutdown', STREAMS, BYTES, 0, 0, 0, CLOSE.closeCode, CLOSE.reason].map(String), {
    timeoutMs: 60_000,
  })
  await allCommitted
  await server.close(CLOSE)

  const report = assertClientOk(await client)
  assert.equal(report.downloadsComplete, STREAMS, 'every download complete with FIN')
  assert.equal(report.downloadBytes, STREAMS * BYTES)
  assert.equal(report.code, CLOSE.closeCode)
  assert.equal(report.reason, CLOSE.reason)
  assert.deepEqual(progress.writeErrors, [])
  assert.deepEqual(await session.closed, CLOSE)
})
