// Runs a script in a child Node process and waits for it to exit by itself: the tests that
// prove nothing (a threadsafe function, a pending promise, a socket) keeps the event loop alive
// after close(). A child still running after `killAfterMs` is killed, which the caller sees as
// `signal: 'SIGKILL'`.
import { spawn } from 'node:child_process'

/** Resolves with `{ code, signal, out }` (out: the child's stdout; stderr is inherited). */
export async function runNodeScript(script, { module = false, killAfterMs = 30_000 } = {}) {
  const args = module ? ['--input-type=module', '-e', script] : ['-e', script]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])))
  clearTimeout(killer)
  return { code, signal, out }
}
