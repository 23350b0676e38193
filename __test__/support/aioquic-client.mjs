// Runs the aioquic (Python) client, __test__/clients/aioquic_client.py, against a server: its
// WebTransport scenarios (__test__/aioquic-client.test.mjs) and its `http` scenario, a plain
// HTTP/3 request reported with the same fields as tools/h3-client's `request` mode.
// Needs python3 with aioquic: python3 -m pip install -r __test__/clients/requirements.txt (set
// PYTHON to use another interpreter; .ci/run installs it). Without aioquic a run fails with the
// install hint: a missing client is not a pass.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const AIOQUIC_CLIENT = join(dirname(fileURLToPath(import.meta.url)), '..', 'clients', 'aioquic_client.py')
export const PYTHON = process.env.PYTHON || 'python3'

export function execPython(args, timeout) {
  return new Promise((resolve) => {
    execFile(PYTHON, args, { timeout, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ error, code: error ? error.code : 0, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

const probe = await execPython(['-c', 'import aioquic; print(aioquic.__version__)'], 10_000)
/** The install hint when aioquic cannot be imported, else false. */
export const aioquicMissing = probe.error
  ? `${PYTHON} cannot import aioquic (pip install -r __test__/clients/requirements.txt): ${probe.stderr.trim().split('\n').pop()}`
  : false

/**
 * Runs `scenario` against `server` (an echo-server handle: port, hashHex), trusting the PEM file
 * `pem` (the server's certificate); `args` go before the scenario (the http scenario's options).
 * The client bounds itself at `timeoutS` (+3 s watchdog). Resolves with the parsed last JSON line,
 * the exit code and a context string for assertion messages; fails the test when there is no JSON.
 */
export async function runAioquic(server, scenario, { pem, args = [], timeoutS = 15 } = {}) {
  if (aioquicMissing) assert.fail(aioquicMissing)
  const argv = [AIOQUIC_CLIENT, '--port', String(server.port), '--cert-pem', pem, '--cert-hash', server.hashHex]
  argv.push('--timeout', String(timeoutS), ...args, scenario)
  const { error, code, stdout, stderr } = await execPython(argv, (timeoutS + 10) * 1000)
  const last = stdout.trim().split('\n').pop() || ''
  let result
  try {
    result = JSON.parse(last)
  } catch {
    assert.fail(`${scenario}: no JSON on the client's last line (exit ${code}, ${error?.killed ? 'killed by timeout' : 'not killed'})\nstdout: ${stdout}\nstderr: ${stderr}`)
  }
  const context = `${scenario} (exit ${code}): ${JSON.stringify(result.errors)}\n${last}\nstderr: ${stderr.slice(-2000)}`
  return { result, code, context }
}
