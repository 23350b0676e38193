// A short soak in npm test: five rounds of the soak's 221 sessions (scripts/soak.mjs), 1,105 sessions
// opened and closed with streams and datagrams; afterwards every live counter is back at zero and
// RSS (after a GC) stays within a stated bound of RSS before. The longer run is `npm run soak`
// (README records its result).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { assertClientBuilt } from './support/wt-client.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// Growth allowed after 1,105 sessions: allocators keep some freed memory (3-14 MB measured over
// 2,210 sessions on Node 24 and 26); a leak of 20 kB per session, a closed connection's state,
// would be 22 MB.
const RSS_BOUND_MB = 20

test('1,105 sessions: counters return to zero and RSS stays bounded', { timeout: 150_000 }, async () => {
  assertClientBuilt()
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', path.join(root, 'scripts', 'soak.mjs'), '--rounds', '5', '--seconds', '90', '--json'],
      { timeout: 130_000 },
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
  assert.ok(report.rssGrowthMb < RSS_BOUND_MB, `rss ${report.before.rss} -> ${report.after.rss} MB`)
})
