// Independent WebTransport servers for the tests of this package's WebTransport client: a client
// tested only against our own server could share a mistake with it unseen. Each one does what
// ./echo-server.mjs does, as far as its library allows (see the doc comment at the top of each):
// - startWtransportServer: tools/wt-server, on the `wtransport` 0.7 crate (quinn underneath, its
//   own HTTP/3 and session layer; the pre-draft-15 protocol). `npm test` builds it
//   (cargo build --release -p wt-server); WT_SERVER_BIN overrides the path.
// - startGoServer: the webtransport-go v0.12 server of test-tools/webtransport-go/v0.12/server,
//   with WebTransport flow control. test-tools/webtransport-go/build.sh builds it (npm test does);
//   WTGO_SERVER_BIN overrides the path.
// Both print one JSON object a line on stdout (ready, session, sessionClosed, streamError, ...),
// kept in `lines` so a test can check what the server saw. A server exits when its stdin ends, so
// one this process forgets still goes when the process does; close() ends it sooner.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const WT_SERVER_BIN = process.env.WT_SERVER_BIN || path.join(repo, 'target', 'release', 'wt-server')
export const WTGO_SERVER_BIN =
  process.env.WTGO_SERVER_BIN || path.join(repo, 'build', 'webtransport-go', 'v0.12', 'wtgo-server')

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * tools/wt-server (wtransport 0.7). options: { protocols: ['a', 'b'], cert, key (PEM strings,
 * both or neither), port }. Resolves once it listens, with the handle described at startPeer.
 */
export function startWtransportServer(options = {}) {
  assert.ok(
    existsSync(WT_SERVER_BIN),
    `wt-server binary not found at ${WT_SERVER_BIN}: run \`cargo build --release -p wt-server\` or set WT_SERVER_BIN`,
  )
  return startPeer('wt-server', WT_SERVER_BIN, options, [])
}

/**
 * The webtransport-go v0.12 server. options: as startWtransportServer's, plus the WebTransport
 * flow-control limits it announces: { maxStreams, maxUniStreams, maxData } (0: not announced;
 * defaults 100, 100, 16 MiB).
 */
export function startGoServer(options = {}) {
  assert.ok(
    existsSync(WTGO_SERVER_BIN),
    `webtransport-go server not found at ${WTGO_SERVER_BIN}: run \`bash test-tools/webtransport-go/build.sh\` or set WTGO_SERVER_BIN`,
  )
  const extra = []
  for (const [option, flag] of [
    ['maxStreams', '--wt-max-streams'],
    ['maxUniStreams', '--wt-max-uni-streams'],
    ['maxData', '--wt-max-data'],
  ]) {
    if (options[option] !== undefined) extra.push(flag, String(options[option]))
  }
  return startPeer('wtgo-server', WTGO_SERVER_BIN, options, extra)
}

/**
 * Spawns a server and waits for its ready line. Resolves with
 * { name, pid, port, hashHex, ready, url(path = '/echo'), lines, waitFor(predicate, ms), stderr(), close() }:
 * `lines` holds every JSON line so far (the ready line first); `waitFor` resolves with the first
 * line (seen before or after the call) for which `predicate` holds, and rejects after `ms`, or
 * once the server has exited, with what it printed; `close()` ends the server and resolves with
 * its { code, signal }.
 */
async function startPeer(name, bin, { protocols, cert, key, port, readyMs = 10_000 } = {}, extra) {
  assert.equal(Boolean(cert), Boolean(key), `${name}: cert and key go together`)
  const args = [...extra]
  let dir
  if (cert) {
    dir = mkdtempSync(path.join(os.tmpdir(), `${name}-`))
    writeFileSync(path.join(dir, 'cert.pem'), cert)
    writeFileSync(path.join(dir, 'key.pem'), key, { mode: 0o600 })
    args.push('--cert', path.join(dir, 'cert.pem'), '--key', path.join(dir, 'key.pem'))
  }
  if (port !== undefined) args.push('--port', String(port))
  if (protocols?.length) args.push('--protocols', protocols.join(','))

  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  running.add(child)
  // Neither the server nor its pipes keep this process alive: a test that forgets close() ends
  // anyway, and the server with it (its stdin ends).
  child.unref()
  for (const stream of [child.stdin, child.stdout, child.stderr]) stream.unref?.()
  child.stdin.on('error', () => {})

  const lines = []
  const waiters = new Set()
  let stderr = ''
  let exit = null
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exit = { code, signal }
      running.delete(child)
      if (dir) rmSync(dir, { recursive: true, force: true })
      for (const waiter of waiters) waiter.fail()
      resolve(exit)
    }),
  )
  child.on('error', (error) => {
    stderr += `spawn failed: ${error.message}\n`
    exit ??= { code: null, signal: null }
    for (const waiter of waiters) waiter.fail()
  })
  child.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d
  })
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line
    try {
      line = JSON.parse(text)
    } catch {
      return
    }
    lines.push(line)
    for (const waiter of waiters) waiter.check(line)
  })

  const describe = () =>
    `${name} (pid ${child.pid})${exit ? ` exited with ${exit.code ?? exit.signal}` : ''}; lines: ${lines
      .map((l) => JSON.stringify(l))
      .join('\n')}; stderr: ${stderr}`

  function waitFor(predicate, ms = 5000) {
    const seen = lines.find((line) => predicate(line))
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter = {
        check(line) {
          if (!predicate(line)) return
          done()
          resolve(line)
        },
        fail() {
          done()
          reject(new Error(`${name}: no matching line before the server exited: ${describe()}`))
        },
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${name}: no matching line within ${ms} ms: ${describe()}`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        waiters.delete(waiter)
      }
      waiters.add(waiter)
      if (exit) waiter.fail()
    })
  }

  async function close() {
    if (!exit) {
      child.stdin.end()
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(killer)
    }
    return exit
  }

  let ready
  try {
    ready = await waitFor((line) => line.ready === true, readyMs)
  } catch (error) {
    await close()
    throw error
  }
  return {
    name,
    pid: child.pid,
    port: ready.port,
    hashHex: ready.certHash,
    ready,
    url: (urlPath = '/echo') => `https://127.0.0.1:${ready.port}${urlPath}`,
    lines,
    waitFor,
    stderr: () => stderr,
    close,
  }
}
