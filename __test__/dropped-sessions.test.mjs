// Sessions the user ignores or drops. A session belongs to the server until it ends (client
// close, idle timeout, server.close()), never to JS garbage collection; what must hold is that
// an unread session stays bounded in native memory and ends with close(), and that once sessions
// have ended and JS has let go of them, GC frees every native object handed to JS.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runNodeScript } from './support/node-child.mjs'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { fileURLToPath } from 'node:url'
import { startEchoServer } from './support/echo-server.mjs'
import { WT_CLIENT_BIN, assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const MiB = 1024 * 1024

// A child process, so that "the process exits by itself after close()" is observable.
const unreadScript = `
import { Server, generateCertificate } from ${JSON.stringify(path.join(here, '..', 'index.js'))}
import { spawn } from 'node:child_process'
const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
const server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
let session = null
server.on('session', (s) => { session = s })   // never reads a stream or a datagram
await server.ready
const url = 'https://127.0.0.1:' + server.address().port + '/'
const hash = Buffer.from(certificate.hash.value).toString('hex')
const rssBefore = process.memoryUsage().rss
const client = spawn(${JSON.stringify(WT_CLIENT_BIN)}, ['--url', url, '--cert-hash', hash, '--timeout-ms', '30000', 'flood', '2500'])
let out = ''
client.stdout.on('data', (d) => (out += d))
const exited = new Promise((resolve) => client.on('exit', resolve))
// The client prints what it pushed when it stops pushing; it then waits for the server.
while (!out.includes('\\n') && client.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 20))
await new Promise((resolve) => setTimeout(resolve, 200))
const stats = session && (await session.getStats())
const rssAfter = process.memoryUsage().rss
const counters = server.counters()
await server.close({ closeCode: 7, reason: 'unread' })
const exitCode = await exited
const closed = session && (await session.closed.then((c) => c, (e) => ({ error: e.code })))
const lines = out.trim().split('\\n').map((l) => JSON.parse(l))
console.log(JSON.stringify({ pushed: lines[0], client: lines.at(-1), exitCode, stats, counters, closed, rssGrowthMb: (rssAfter - rssBefore) / ${MiB} }))
`

test('a session nobody reads, flooded with streams and datagrams, stays bounded; close() ends it and the process exits', { timeout: 90_000 }, async () => {
  assertClientBuilt()
  const { code, signal, out } = await runNodeScript(unreadScript, { module: true, killAfterMs: 45_000 })
  assert.equal(signal, null, `the process had to be killed: something kept it alive after close(); output: ${out}`)
  assert.equal(code, 0, out)
  const report = JSON.parse(out.trim().split('\n').at(-1))
  console.log(`unread session: ${JSON.stringify(report)}`)
  const { pushed, client, stats, closed } = report
  // QUIC MAX_STREAMS (maxIncomingStreams, default 100 each) caps the streams the client got;
  // uni gets 3 more for HTTP/3's own streams, of which this client opens only one.
  assert.ok(pushed.openedBidi > 0 && pushed.openedBidi <= 100, `bidi streams opened: ${pushed.openedBidi}`)
  assert.ok(pushed.openedUni > 0 && pushed.openedUni <= 103, `uni streams opened: ${pushed.openedUni}`)
  // Flow control caps the stream bytes the server holds for them (16 MiB connection window):
  // what the client could write, and what arrived beside the datagrams (about 1 KB each).
  assert.ok(pushed.bytesWritten <= 16 * MiB, `stream bytes the client got to write: ${pushed.bytesWritten}`)
  const datagramBytes = stats.datagrams.received * 1100
  assert.ok(stats.bytesReceived - datagramBytes < 20 * MiB, `bytes received: ${stats.bytesReceived}`)
  // The datagram queue (incomingHighWaterMark, default 1024) drops the oldest beyond it.
  const { received, droppedIncoming } = stats.datagrams
  assert.ok(received > 2_000, `the client pushed datagrams (${received} received)`)
  assert.ok(received - droppedIncoming <= 1024, `queued datagrams: ${received - droppedIncoming}`)
  assert.ok(report.rssGrowthMb < 64, `rss grew ${report.rssGrowthMb} MB`)
  // close() ended the unread session with its code and reason, on both ends.
  assert.deepEqual(closed, { closeCode: 7, reason: 'unread' })
  assert.equal(client.sessionEnd, 'ApplicationClosed', JSON.stringify(client))
  assert.equal(client.code, 7)
  assert.equal(client.reason, 'unread')
})

/** `global.gc` without --expose-gc on the test runner's command line (node's documented way). */
function gcFunction() {
  if (typeof global.gc === 'function') return global.gc
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc')
}

async function collectUntil(condition, ms = 15_000) {
  const gc = gcFunction()
  const deadline = Date.now() + ms
  for (;;) {
    gc()
    // Finalizers run on later ticks of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 20))
    if (condition() || Date.now() > deadline) return
  }
}

function liveWrappers(server) {
  const { nativeRequests, nativeSessions, nativeStreams } = server.counters()
  return { nativeRequests, nativeSessions, nativeStreams }
}

test('native requests, sessions and streams are freed by GC once sessions ended and JS dropped them', { timeout: 120_000 }, async () => {
  assertClientBuilt()
  const echo = await startEchoServer()
  try {
    const peak = { nativeRequests: 0, nativeSessions: 0, nativeStreams: 0 }
    const sampler = setInterval(() => {
      for (const [name, value] of Object.entries(liveWrappers(echo.server))) peak[name] = Math.max(peak[name], value)
    }, 5)
    // 200 sessions, each with a bidi echo, a uni echo (two streams) and a datagram.
    const soak = assertClientOk(await runWtClient(echo, ['soak', '200', '4'], { timeoutMs: 60_000 }))
    clearInterval(sampler)
    assert.equal(soak.failed, 0)
    assert.ok(peak.nativeSessions > 0 && peak.nativeStreams > 0, `the counts saw the objects: ${JSON.stringify(peak)}`)
    await collectUntil(() => echo.server.counters().sessions === 0)
    assert.equal(echo.server.counters().sessions, 0, 'every session ended')

    // One session the application still holds keeps its native object, whatever GC runs.
    let held = echo.sessions.at(-1)
    echo.sessions.length = 0
    await collectUntil(() => liveWrappers(echo.server).nativeSessions <= 1 && liveWrappers(echo.server).nativeStreams === 0)
    assert.deepEqual(liveWrappers(echo.server), { nativeRequests: 0, nativeSessions: 1, nativeStreams: 0 })
    assert.ok(held.request.path)

    // Dropped, it goes too.
    held = null
    await collectUntil(() => liveWrappers(echo.server).nativeSessions === 0)
    assert.deepEqual(liveWrappers(echo.server), { nativeRequests: 0, nativeSessions: 0, nativeStreams: 0 })
  } finally {
    await echo.close()
  }
})
