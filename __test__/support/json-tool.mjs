// Runs one of the test tools that print a single JSON line last (tools/wt-client, tools/h3-client,
// the webtransport-go peers) and reads that line.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'

/**
 * Runs `bin` with `argv`; resolves with the exit code, the parsed last JSON line (null if there is
 * none) and the raw output. Never rejects; killed 10 s after `timeoutMs` (the tools bound
 * themselves at `timeoutMs`).
 */
export function runJsonTool(bin, argv, timeoutMs) {
  return new Promise((resolve) => {
    execFile(bin, argv, { timeout: timeoutMs + 10_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      let json = null
      try {
        json = JSON.parse(stdout.trim().split('\n').filter(Boolean).at(-1) ?? '')
      } catch {}
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0
      resolve({ code, json, stdout, stderr, killed: error?.killed ?? false })
    })
  })
}

/** Asserts the tool reported success, with its whole output in the message when it did not; the JSON. */
export function assertToolOk(result) {
  const detail = `exit ${result.code}${result.killed ? ' (killed)' : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  assert.ok(result.json, `no JSON on the last stdout line: ${detail}`)
  assert.equal(result.json.ok, true, detail)
  assert.equal(result.code, 0, detail)
  return result.json
}
