// Soak: rounds of sessions against the echo server, then RSS growth after a GC, and the server's
// live counters, which must be back at zero. A round is 221 sessions, each on its own
// connection through the independent client (tools/wt-client), all three at once:
//   - 200 sessions at once, each with a bidi echo, a uni echo and a datagram;
//   - 20 sessions at once, each with 20 bidi echoes one after another, a uni echo and a datagram;
//   - 1 session with 100 datagrams echoed.
// Three warm-up rounds first (allocator arenas, JIT and caches reach their working size), then
// memory is read after a GC; again after the last round.
//
// Memory is read twice each time: after a plain gc(), and after V8's memory-reducing GC (what
// Node's memory reducer runs on a process that has gone quiet). The growth that counts is the
// second: a plain gc() keeps the young generation at the size V8 grew it to under load (64 MB on
// Node 24 and 26, 32 MB on Node 22), nearly all of it free, which is V8's sizing and not memory
// anything retains; and Node 24's memory reducer never finds a process quiet, so there only an
// explicit GC gives that space back. Both readings wait a little over a second after the last
// connection is gone: mimalloc gives freed memory back to the OS 1 s after it is freed.
//   npm run soak                      (10 rounds: 2,210 sessions)
//   node --expose-gc scripts/soak.mjs --rounds 5 --seconds 120 --json   (whichever ends first)
import { startEchoServer } from '../__test__/support/echo-server.mjs'
import { runWtClient } from '../__test__/support/wt-client.mjs'

const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback)
const rounds = option('--rounds', 10)
const seconds = option('--seconds', 600)
const asJson = argv.includes('--json')
if (typeof global.gc !== 'function') {
  console.error('run with node --expose-gc (npm run soak does)')
  process.exit(2)
}

const WARM_UP_ROUNDS = 3
const ROUND = [
  { args: ['soak', '200', '200'], sessions: 200 },
  { args: ['soak', '20', '20', '20'], sessions: 20 },
  { args: ['datagrams', '100'], sessions: 1 },
]
const SESSIONS_PER_ROUND = ROUND.reduce((sum, step) => sum + step.sessions, 0)

const echo = await startEchoServer()
// The test helper keeps every session for assertions; a soak must not.
echo.server.on('session', () => {
  echo.sessions.length = 0
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs one round; resolves with { sessions, failed, errors }. */
async function round() {
  const results = await Promise.all(ROUND.map((step) => runWtClient(echo, step.args, { timeoutMs: 60_000 })))
  let failed = 0
  const errors = []
  ROUND.forEach((step, i) => {
    const { json, code } = results[i]
    // `soak` reports how many of its sessions failed; the datagram scenario is one session.
    const stepFailed = json?.ok ? 0 : (json?.failed ?? step.sessions)
    failed += stepFailed
    if (stepFailed > 0) errors.push(`${step.args.join(' ')}: ${json?.error ?? `exit ${code}`}`)
  })
  return { sessions: SESSIONS_PER_ROUND, failed, errors }
}

const mb = (bytes) => Math.round((bytes / 1048576) * 10) / 10

/** Memory once the connections are gone: after a plain gc(), then after a memory-reducing one (MB). */
async function settledMemory() {
  const deadline = Date.now() + 10_000
  while (echo.server.counters().connections > 0 && Date.now() < deadline) await sleep(50)
  await sleep(1100)
  global.gc()
  const plain = process.memoryUsage()
  for (let i = 0; i < 3; i++) {
    global.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    await sleep(50)
  }
  const m = process.memoryUsage()
  return {
    rss: mb(m.rss),
    heapUsed: mb(m.heapUsed),
    heapTotal: mb(m.heapTotal),
    external: mb(m.external),
    plainGc: { rss: mb(plain.rss), heapTotal: mb(plain.heapTotal) },
  }
}

for (let i = 0; i < WARM_UP_ROUNDS; i++) await round()
const before = await settledMemory()
const started = Date.now()
let sessions = 0
let failed = 0
let done = 0
const errors = []
while (done < rounds && Date.now() - started < seconds * 1000) {
  const result = await round()
  sessions += result.sessions
  failed += result.failed
  errors.push(...result.errors)
  done++
}
const elapsed = (Date.now() - started) / 1000
const after = await settledMemory()
const counters = echo.server.counters()
await echo.close()
const growth = (a, b) => Math.round((b - a) * 10) / 10
const report = {
  node: process.version,
  rounds: done,
  seconds: Math.round(elapsed),
  sessions,
  failed,
  sessionsPerSecond: Math.round(sessions / elapsed),
  before,
  after,
  rssGrowthMb: growth(before.rss, after.rss),
  rssGrowthPlainGcMb: growth(before.plainGc.rss, after.plainGc.rss),
  counters,
  firstError: errors[0] ?? null,
}
if (asJson) console.log(JSON.stringify(report))
else {
  const line = (m) => `rss ${m.rss} MB (heap used ${m.heapUsed} of ${m.heapTotal} MB, external ${m.external} MB)`
  console.log(`node ${process.version}: ${done} rounds of ${SESSIONS_PER_ROUND} sessions after ${WARM_UP_ROUNDS} warm-up rounds: ${sessions} sessions in ${report.seconds} s (${report.sessionsPerSecond}/s), failed: ${failed}`)
  if (errors.length > 0) console.log(`first failure: ${errors[0]}`)
  console.log(`before: ${line(before)}`)
  console.log(`after:  ${line(after)}`)
  console.log(`rss growth after GC: ${report.rssGrowthMb} MB`)
  console.log(
    `after a plain gc() instead: rss ${before.plainGc.rss} -> ${after.plainGc.rss} MB (growth ${report.rssGrowthPlainGcMb} MB), ` +
      `heap total ${before.plainGc.heapTotal} -> ${after.plainGc.heapTotal} MB`,
  )
  console.log(`live counters after: ${JSON.stringify(counters)}`)
}
const leaked = counters.connections + counters.sessions + counters.streamHalves
process.exit(failed === 0 && leaked === 0 ? 0 : 1)
