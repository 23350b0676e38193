// The process exits by itself after `await server.close()`, also after sessions existed: no
// native handle, threadsafe function or pending native call may keep Node's event loop alive.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runNodeScript } from './support/node-child.mjs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))

const script = `
import { startEchoServer } from ${JSON.stringify(path.join(here, 'support', 'echo-server.mjs'))}
import { execFile } from 'node:child_process'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const echo = await startEchoServer()
const dir = mkdtempSync(join(tmpdir(), 'wt-exit-'))
writeFileSync(join(dir, 'cert.pem'), echo.certificate.cert)
const args = [${JSON.stringify(path.join(here, 'clients', 'aioquic_client.py'))}, '--port', String(echo.port),
  '--cert-pem', join(dir, 'cert.pem'), '--cert-hash', echo.hashHex, 'stream4']
const result = await new Promise((resolve) => execFile('python3', args, { timeout: 20000 }, (error, stdout) => resolve({ error, stdout })))
if (result.error) { console.error('client failed', result.stdout); process.exitCode = 3 }
if (echo.sessions.length !== 1) { console.error('expected one session'); process.exitCode = 4 }
await echo.close()
console.log('closed')
`

test('the process exits by itself after close(), with sessions having existed', { timeout: 60_000 }, async () => {
  const { code, signal, out } = await runNodeScript(script, { module: true })
  assert.equal(signal, null, 'the process had to be killed: something kept it alive after close()')
  assert.equal(code, 0)
  assert.match(out, /closed/)
})
