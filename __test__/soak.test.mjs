// A short soak in npm test: 1000 sessions opened and closed (each with streams and a datagram);
// afterwards every live counter is back at zero and RSS (after a GC) stays within a stated bound
// of RSS before. The longer run is `npm run soak` (README records its result).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { assertClientBuilt } from './support/wt-client.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// Growth allowed after 1000 sessions: allocator arenas keep some freed memory; a real leak of a
// connection's state (~100 kB) per session would be ~100 MB.
const RSS_BOUND_MB = 40

test('1000 sessions: counters return to zero and RSS stays bounded', { timeout: 120_000 }, async () => {
  assertClientBuilt()
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', path.join(root, 'scripts', 'soak.mjs'), '--seconds', '60', '--sessions', '1000', '--json'],
      { timeout: 100_000 },
      (error, stdout, stderr) => (error && !stdout ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stdout })),
    )
  })
  const report = JSON.parse(stdout.trim().split('\n').at(-1))
  console.log(`soak: ${JSON.stringify(report)}`)
  assert.ok(report.sessions >= 1000, `ran ${report.sessions} sessions`)
  assert.equal(report.failed, 0)
  assert.deepEqual(
    { connections: report.counters.connections, sessions: report.counters.sessions, streamHalves: report.counters.streamHalves, faults: report.counters.faults },
    { connections: 0, sessions: 0, streamHalves: 0, faults: 0 },
  )
  assert.ok(report.rssAfterMb - report.rssBeforeMb < RSS_BOUND_MB, `rss ${report.rssBeforeMb} -> ${report.rssAfterMb} MB`)
})
