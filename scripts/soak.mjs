// Soak: sessions opened and closed in a loop (each with a bidi echo, a uni echo and a datagram)
// against the echo server, for a bounded time; prints sessions/s, RSS before and after (after a
// GC) and the server's live counters, which must be back at zero.
//   npm run soak                      (60 s)
//   node --expose-gc scripts/soak.mjs --seconds 20 --sessions 1000 --json   (whichever ends first)
import { startEchoServer } from '../__test__/support/echo-server.mjs'
import { runWtClient } from '../__test__/support/wt-client.mjs'

const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback)
const seconds = option('--seconds', 60)
const maxSessions = option('--sessions', Infinity)
const asJson = argv.includes('--json')
if (typeof global.gc !== 'function') {
  console.error('run with node --expose-gc (npm run soak does)')
  process.exit(2)
}

const echo = await startEchoServer()
// The test helper keeps every session for assertions; a soak must not.
echo.server.on('session', () => {
  echo.sessions.length = 0
})
const settle = async () => {
  await new Promise((resolve) => setTimeout(resolve, 300))
  for (let i = 0; i < 3; i++) {
    global.gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
const rssMb = () => Math.round((process.memoryUsage().rss / 1048576) * 10) / 10

// Warm-up: allocator arenas, JIT and caches reach their working size first.
await runWtClient(echo, ['soak', '200', '4'], { timeoutMs: 60_000 })
await settle()
const before = rssMb()
const started = Date.now()
let sessions = 0
let failed = 0
while (Date.now() - started < seconds * 1000 && sessions < maxSessions) {
  const result = await runWtClient(echo, ['soak', '250', '4'], { timeoutMs: 60_000 })
  sessions += result.json?.sessions ?? 0
  failed += result.json?.failed ?? 250
}
const elapsed = (Date.now() - started) / 1000
await settle()
const after = rssMb()
const counters = echo.server.counters()
await echo.close()
const report = {
  seconds: Math.round(elapsed),
  sessions,
  failed,
  sessionsPerSecond: Math.round(sessions / elapsed),
  rssBeforeMb: before,
  rssAfterMb: after,
  counters,
}
if (asJson) console.log(JSON.stringify(report))
else {
  console.log(`sessions: ${sessions} in ${report.seconds} s (${report.sessionsPerSecond}/s), failed: ${failed}`)
  console.log(`rss before: ${before} MB, after (GC): ${after} MB, growth ${Math.round((after - before) * 10) / 10} MB`)
  console.log(`live counters after: ${JSON.stringify(counters)}`)
}
const leaked = counters.connections + counters.sessions + counters.streamHalves
process.exit(failed === 0 && leaked === 0 ? 0 : 1)
