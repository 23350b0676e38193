#!/usr/bin/env node
// bench/run.mjs (`npm run bench`): builds the benchmark (release), then runs every mode of the
// load generator (bench/load, `wt-load`) against three echo servers, in the same run:
//   (a) js          bench/js-echo.mjs: the echo in JavaScript on our public API
//   (b) core        bench/core-echo: the same echo in Rust on our core (no napi): the ceiling
//   (c) wtransport  bench/wtransport-echo: the same echo on the wtransport 0.7 server: the baseline
// and, in the `http` mode, one fetch handler (bench/http-fetch.mjs) served two ways, small GETs
// from tools/h3-client's `load` over each protocol:
//   (d) fetch-h3    our Server's `fetch` option, HTTP/3
//   (e) fetch-h2    node:http2 over TLS with a Request/Response adapter, HTTP/2: the baseline of (d)
// and, in the `sessions` and `dgram8` modes, (a) and (b) again with their load spread over two QUIC
// endpoints (the `workers` option, issue 15) against one, in a table of their own:
//   js-w2, core-w2  `workers: 2` (js, core: the default, 1 on a 2-core machine)
// Each (mode, server) pair runs on a freshly started server, `--reps` times (default 3; the table
// shows medians). Server CPU seconds (/proc/<pid>/stat utime+stime) and RSS (/proc/<pid>/status
// VmRSS) are sampled before and after every run, and the server socket's drop counter
// (/proc/net/udp) too. Prints a Markdown table plus the ratios of (a) and (b) to (c), and writes
// everything to bench/results.json.
//
// Two clients load the echo servers: `wt-load` (bench/load, the wtransport crate), for every
// server and the table above, and `node` (bench/node-load.mjs, the same modes on this package's
// own W3C `WebTransport` client), for js, core and wtransport (smoke: js and wtransport). Each
// (server, mode) pair runs once per client per repetition, back to back on fresh servers warmed
// up alike (by wt-load), and a second table sets the node client beside wt-load per server with
// their ratio, paired per repetition.
//
// Options:
//   --smoke          short runs (a few seconds per mode and server), one repetition, no
//                    results.json unless --out is given; for `npm test`
//   --reps N         repetitions (default 3, smoke 1)
//   --modes a,b      only these modes (bulk, rr, dgram, dgram10k, dgram8, sessions, sessions10k,
//                    http)
//   --servers a,b    only these servers (js, js-loop, core, wtransport, js-w2, core-w2; fetch-h3,
//                    fetch-h2 for http)
//   --clients a,b    load the echo servers with these clients (wt-load, node; default both):
//                    wt-load runs every echo server, node the servers named by --servers, else
//                    js, core, wtransport (smoke: js, wtransport); neither runs the http mode
//                    (h3-client does), node skips sessions10k
//   --dgram-rate R   also run dgram at a fixed R/s (loss at the same offered rate for every server)
//   --big            also hold 10,000 sessions per server once (sessions10k; ~20-40 s each)
//   --client-threads N  worker threads of the load generator (default 1)
//   --quiet-budget S seconds the whole run may wait, before a run, for other processes to go
//                    below 0.3 cores (default 60, smoke 0); the wait is recorded per run
//   --no-warmup      skip the unmeasured warm-up pass before each run (smoke never warms up)
//   --no-build       use what is built (the addon beside binding.js, <target>/release binaries)
//   --out FILE       where to write the JSON (default bench/results.json; smoke: none)
// Exit status: 0 when every run passed its content checks and every server answered, else 1.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { createHash } from 'node:crypto'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const argv = process.argv.slice(2)
const flag = (name) => argv.includes(name)
const option = (name) => {
  const i = argv.indexOf(name)
  return i === -1 ? undefined : argv[i + 1]
}
const smoke = flag('--smoke')
// The client's tokio runtime: 1 = one thread, which leaves the other core to the server.
const clientThreads = Number(option('--client-threads') ?? 1)
const reps = Number(option('--reps') ?? (smoke ? 1 : 3))
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
const bin = (name) => path.join(targetDir, 'release', name)
const started = Date.now()
const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100)
const log = (line) => process.stderr.write(`${line}\n`)

// ---------------------------------------------------------------------------------------------
// What runs.

const SERVERS = [
  { name: 'js', label: '(a) JS echo on our API', cmd: process.execPath, args: [path.join(here, 'js-echo.mjs')], counters: true },
  // The same server with every byte read and written by JS (a reader/writer loop instead of
  // pipeTo, which runs natively): what an application that looks at its bytes gets. Only the
  // modes where that differs.
  {
    name: 'js-loop',
    label: "(a') JS echo, bytes through JS",
    cmd: process.execPath,
    args: [path.join(here, 'js-echo.mjs'), '--loop'],
    modes: ['bulk', 'rr'],
  },
  { name: 'core', label: '(b) Rust echo on our core', cmd: bin('core-echo'), args: [], counters: true },
  { name: 'wtransport', label: '(c) wtransport 0.7 echo', cmd: bin('wtransport-echo'), args: [] },
  // Issue 15: (a) and (b) with two QUIC endpoints (`workers: 2`) against their default one
  // (`base`), where the load is many connections: a connection stays on one endpoint, so the
  // single-session modes would never use the second. They answer a line on stdin with their
  // counters (`counters`), which say how the packets and connections spread over the endpoints.
  {
    name: 'core-w2',
    label: '(b) Rust echo on our core, workers: 2',
    cmd: bin('core-echo'),
    args: ['--workers', '2'],
    modes: ['dgram8', 'sessions'],
    base: 'core',
    counters: true,
  },
  {
    name: 'js-w2',
    label: '(a) JS echo on our API, workers: 2',
    cmd: process.execPath,
    args: [path.join(here, 'js-echo.mjs'), '--workers', '2'],
    modes: ['dgram8', 'sessions'],
    base: 'js',
    counters: true,
  },
  // The `http` mode: one fetch handler, HTTP/3 on our Server against HTTP/2 on node:http2, each
  // loaded by tools/h3-client over its protocol (`client`: its --transport).
  {
    name: 'fetch-h3',
    label: '(d) fetch handler on our Server, HTTP/3',
    cmd: process.execPath,
    args: [path.join(here, 'http-fetch.mjs'), '--h3'],
    modes: ['http'],
    client: 'h3',
  },
  {
    name: 'fetch-h2',
    label: '(e) the same handler on node:http2 (TLS), HTTP/2',
    cmd: process.execPath,
    args: [path.join(here, 'http-fetch.mjs'), '--h2'],
    modes: ['http'],
    client: 'h2',
  },
]

// What the http mode's handler answers to GET / (bench/http-fetch.mjs): every response is checked
// against it (status, length, SHA-256).
const HTTP_BODY = Buffer.from('hello /')
const HTTP_CHECK = [
  '--expect-status',
  '200',
  '--expect-body-length',
  String(HTTP_BODY.length),
  '--expect-body-sha256',
  createHash('sha256').update(HTTP_BODY).digest('hex'),
]
// Small GETs from 8 concurrent requesters on one connection (h3-client's default concurrency),
// bounded by count and time.
const httpLoad = (requests, seconds) => [
  'load',
  '--path',
  '/',
  '--concurrency',
  '8',
  '--requests',
  String(requests),
  '--duration-ms',
  String(seconds * 1000),
  ...HTTP_CHECK,
]

// The servers of the workers comparison: `dgram8` (datagrams at full rate over 8 sessions, so
// that several connections share the server) runs on these only. The smoke checks the two with
// two endpoints (every echo still comes back, to its session) and skips the ratio's baselines.
const WORKER_SERVERS = smoke ? ['js-w2', 'core-w2'] : ['js', 'js-w2', 'core', 'core-w2']

// mode name -> wt-load arguments; `hold` marks the modes where the runner samples the server
// while the client holds its sessions.
const MODES = smoke
  ? {
      bulk: { args: ['bulk', '--bytes', '20000000'], timeoutMs: 30_000 },
      rr: { args: ['rr', '--sessions', '5', '--rounds', '200'], timeoutMs: 30_000 },
      dgram: { args: ['dgram', '--seconds', '2'], timeoutMs: 20_000 },
      dgram10k: { args: ['dgram', '--seconds', '2', '--rate', '10000'], timeoutMs: 20_000 },
      dgram8: { args: ['dgram', '--seconds', '1', '--sessions', '8'], timeoutMs: 20_000, servers: WORKER_SERVERS },
      sessions: { args: ['sessions', '--count', '50'], hold: true, timeoutMs: 30_000 },
      http: { args: httpLoad(300, 10), timeoutMs: 20_000, servers: ['fetch-h3', 'fetch-h2'] },
    }
  : {
      bulk: { args: ['bulk', '--bytes', '100000000'], timeoutMs: 90_000 },
      rr: { args: ['rr', '--sessions', '10', '--rounds', '500'], timeoutMs: 90_000 },
      dgram: { args: ['dgram', '--seconds', '5'], timeoutMs: 30_000 },
      dgram10k: { args: ['dgram', '--seconds', '5', '--rate', '10000'], timeoutMs: 30_000 },
      dgram8: { args: ['dgram', '--seconds', '5', '--sessions', '8'], timeoutMs: 30_000, servers: WORKER_SERVERS },
      sessions: { args: ['sessions', '--count', '200'], hold: true, timeoutMs: 60_000 },
      http: { args: httpLoad(30_000, 30), timeoutMs: 60_000, servers: ['fetch-h3', 'fetch-h2'] },
    }
// Unmeasured warm-up passes against the same fresh server before each measured run (all servers
// alike): a long-running server is warm. Each pass is one wt-load run, so it brings new sessions,
// and that is what the JS server needs: V8 specialises the echo's code to the first sessions it
// sees and deoptimises it for the next ones (the closures and objects of a new session), and only
// settles after a few generations of sessions. Back-to-back rr passes of 5,000 streams (10 new
// sessions each) on one JS server measured 17k, 21k, 25k, then 26-29k streams/s from the fourth
// on, and a first pass of 20,000 streams did not shorten that; bulk passes of 100 MB with bytes
// through JS measured 150, 170, then 280 MB/s from the third on. (b) and (c) measured the same
// from their first pass (bench/README.md, profile 7). --no-warmup measures cold servers.
const WARMUP = {
  bulk: { args: ['bulk', '--bytes', '100000000'], passes: 3 },
  rr: { args: ['rr', '--sessions', '10', '--rounds', '500'], passes: 4 },
  dgram: { args: ['dgram', '--seconds', '1'], passes: 2 },
  dgram10k: { args: ['dgram', '--seconds', '1', '--rate', '10000'], passes: 2 },
  dgram8: { args: ['dgram', '--seconds', '1', '--sessions', '8'], passes: 2 },
  dgramRate: { args: ['dgram', '--seconds', '1', '--rate', '10000'], passes: 2 },
  sessions: { args: ['sessions', '--count', '50', '--hold-ms', '100'], passes: 2 },
  // Both http servers are JS: V8 settles their request path after a few passes (each a new
  // connection), as it does for the echo.
  http: { args: httpLoad(10_000, 20), passes: 3 },
}
const warmup = !smoke && !flag('--no-warmup')
const dgramRate = option('--dgram-rate')
if (dgramRate) {
  MODES.dgramRate = { args: ['dgram', '--seconds', smoke ? '2' : '5', '--rate', dgramRate], timeoutMs: 30_000 }
}
if (flag('--big')) {
  MODES.sessions10k = {
    args: ['sessions', '--count', '10000', '--concurrency', '500'],
    hold: true,
    timeoutMs: 150_000,
    once: true,
  }
}
const onlyModes = option('--modes')?.split(',')
const onlyServers = option('--servers')?.split(',')
const CLIENTS = ['wt-load', 'node']
const clients = option('--clients')?.split(',') ?? CLIENTS
for (const c of clients) if (!CLIENTS.includes(c)) throw new Error(`unknown client ${c} (${CLIENTS.join(', ')})`)
// The node client: the modes it has (wt-load's but the 10,000-session hold), and the servers it
// loads unless --servers names them: ours (the JS echo users write, the core echo without napi)
// and the wtransport baseline; the smoke keeps one of ours and the baseline.
const NODE_MODES = ['bulk', 'rr', 'dgram', 'dgram10k', 'dgramRate', 'sessions']
const NODE_SERVERS = onlyServers ?? (smoke ? ['js', 'wtransport'] : ['js', 'core', 'wtransport'])
/**
 * The clients that load server `def` in mode `modeName`: the http servers have h3-client
 * (`def.client`), the echo servers wt-load and the node client as selected.
 */
function clientsFor(def, modeName) {
  if (def.client) return ['h3-client']
  return clients.filter((c) => c === 'wt-load' || (NODE_MODES.includes(modeName) && NODE_SERVERS.includes(def.name)))
}
const modeNames = Object.keys(MODES).filter((m) => !onlyModes || onlyModes.includes(m))
const servers = SERVERS.filter((s) => !onlyServers || onlyServers.includes(s.name))
for (const m of onlyModes ?? []) if (!MODES[m]) throw new Error(`unknown mode ${m} (${Object.keys(MODES).join(', ')})`)
for (const s of onlyServers ?? []) if (!SERVERS.some((d) => d.name === s)) throw new Error(`unknown server ${s}`)

// ---------------------------------------------------------------------------------------------
// Build.

function run(cmd, args) {
  log(`$ ${path.basename(cmd)} ${args.join(' ')}`)
  const result = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
  if (result.status !== 0) {
    log(`bench: ${path.basename(cmd)} failed (${result.error?.message ?? `exit ${result.status}`})`)
    process.exit(1)
  }
}

if (!flag('--no-build')) {
  const t = Date.now()
  run('npm', ['run', 'build'])
  const locked = fs.existsSync(path.join(root, 'Cargo.lock')) ? ['--locked'] : []
  const bins = ['-p', 'wt-load', '-p', 'wtransport-echo', '-p', 'core-echo', '-p', 'h3-client']
  run(process.env.CARGO || 'cargo', ['build', '--release', ...locked, ...bins])
  log(`bench: build took ${((Date.now() - t) / 1000).toFixed(1)} s`)
}
for (const name of ['wt-load', 'core-echo', 'wtransport-echo', 'h3-client']) {
  if (!fs.existsSync(bin(name))) {
    log(`bench: ${bin(name)} is missing (run without --no-build)`)
    process.exit(1)
  }
}

// One certificate for every server: the same handshake cost everywhere.
const require = createRequire(import.meta.url)
const { generateCertificate } = require('..')
const certificate = generateCertificate({ hostnames: ['localhost', '127.0.0.1'], days: 10 })
const certHash = Buffer.from(certificate.hash.value).toString('hex')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-bench-'))
const certFile = path.join(tmp, 'cert.pem')
const keyFile = path.join(tmp, 'key.pem')
fs.writeFileSync(certFile, certificate.cert)
fs.writeFileSync(keyFile, certificate.key, { mode: 0o600 })
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))

// ---------------------------------------------------------------------------------------------
// /proc sampling.

const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

function sample(pid, port) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    const cpu = (Number(fields[11]) + Number(fields[12])) / clockTicks
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
    const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? NaN)
    return { cpu, rssKb, threads, udpDrops: udpDrops(port) }
  } catch {
    return null
  }
}

/** CPU seconds the whole machine spent busy (all processes), from /proc/stat. */
function machineBusySeconds() {
  try {
    const cols = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal. Processes' time only (user, nice, system):
    // interrupt time is no process's, and on loopback much of it is our own packets.
    return (cols[0] + cols[1] + cols[2]) / clockTicks
  } catch {
    return null
  }
}

/**
 * The kernel's drop counters (receive buffer full) of the UDP sockets bound to 127.0.0.1:port,
 * summed: a server with several endpoints (`workers`) has one socket each on the same port.
 */
function udpDrops(port) {
  try {
    const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
    let drops = null
    for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols[1] === want) drops += Number(cols[cols.length - 1])
    }
    return drops
  } catch {}
  return null
}

// ---------------------------------------------------------------------------------------------
// Processes.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const live = new Set()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of live) child.kill('SIGKILL')
    process.exit(130)
  })
}

function track(child) {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null
}

async function startServer(def) {
  const child = track(
    spawn(def.cmd, [...def.args, '--cert', certFile, '--key', keyFile], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }),
  )
  let stderr = ''
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  child.stdin.on('error', () => {})
  const lines = readline.createInterface({ input: child.stdout })
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${def.name} did not report its port within 20 s`)), 20_000)
    lines.once('line', (line) => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(line))
      } catch {
        reject(new Error(`${def.name} printed ${JSON.stringify(line)} instead of its port`))
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${def.name} exited (${signal ?? code}) before listening: ${stderr.trim()}`))
    })
    child.once('error', (e) => reject(new Error(`${def.name}: ${e.message}`)))
  })
  // Later lines answer askCounters, in order.
  const answers = []
  lines.on('line', (line) => answers.shift()?.(line))
  if (!info.port) throw new Error(`${def.name} reported no port`)
  return { child, port: info.port, pid: child.pid, stderr: () => stderr, counters: def.counters, answers }
}

/**
 * The counters of a server that has them (`def.counters`: it answers a line on its stdin with
 * `{"counters":{...}}`), or null (none, no answer within 2 s).
 */
function askCounters(server) {
  if (!server.counters || exited(server.child)) return null
  return new Promise((resolve) => {
    const answer = (line) => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(line).counters ?? null)
      } catch {
        resolve(null)
      }
    }
    const timer = setTimeout(() => {
      server.answers.splice(server.answers.indexOf(answer), 1)
      resolve(null)
    }, 2000)
    server.answers.push(answer)
    server.child.stdin.write('\n')
  })
}

async function stopServer(server) {
  if (exited(server.child)) return
  const gone = new Promise((resolve) => server.child.once('exit', resolve))
  server.child.stdin.end()
  server.child.kill('SIGTERM')
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 3000)
  await gone
  clearTimeout(timer)
}

/**
 * Runs a load generator once against the server (`loader` wt-load, or node for
 * bench/node-load.mjs; h3-client over the server's `client` protocol for the http servers);
 * resolves with its JSON report (a failure report when it breaks).
 */
function runLoad(def, port, mode, onReady, loader = 'wt-load') {
  const url = def.client ? `https://127.0.0.1:${port}/` : `https://127.0.0.1:${port}/echo`
  const args = ['--url', url, '--cert-hash', certHash, '--timeout-ms', String(mode.timeoutMs)]
  // The node client has no runtime of its own to size: it runs on Node's thread and the addon's.
  if (loader !== 'node') args.push('--threads', String(clientThreads))
  if (def.client) args.push('--transport', def.client)
  args.push(...mode.args)
  if (mode.hold) args.push('--wait-stdin', '--hold-ms', String(mode.timeoutMs))
  const client = def.client ? 'h3-client' : loader === 'node' ? 'node-load' : 'wt-load'
  const [cmd, cmdArgs] = client === 'node-load' ? [process.execPath, [path.join(here, 'node-load.mjs'), ...args]] : [bin(client), args]
  const child = track(spawn(cmd, cmdArgs, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }))
  child.stdin.on('error', () => {})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  const errLines = readline.createInterface({ input: child.stderr })
  errLines.on('line', async (line) => {
    stderr = (stderr + line + '\n').slice(-4000)
    if (!line.startsWith('{"event":"ready"')) return
    try {
      await onReady?.(JSON.parse(line))
    } finally {
      child.stdin.write('\n')
    }
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), mode.timeoutMs + 15_000)
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(killer)
      const last = stdout.trim().split('\n').pop() ?? ''
      let report
      try {
        report = JSON.parse(last)
      } catch {
        report = { ok: false, error: `${client} ended (${signal ?? code}) without a report: ${stderr.trim().slice(-500)}` }
      }
      if (report.ok && code !== 0) report = { ...report, ok: false, error: `${client} exited with ${code}` }
      resolve(report)
    })
  })
}

// ---------------------------------------------------------------------------------------------
// One run: a fresh server, a settle, samples around the load.

async function runOnce(def, modeName, rep, client) {
  const mode = MODES[modeName]
  const record = { server: def.name, mode: modeName, rep, client }
  const result = {}
  let server
  try {
    server = await startServer(def)
  } catch (error) {
    return { ...record, ok: false, startFailed: true, error: error.message }
  }
  try {
    await sleep(300)
    // Idle RSS is a fresh server's, before any client (the warm-up included).
    result.fresh = sample(server.pid, server.port)
    if (warmup && WARMUP[modeName]) {
      for (let pass = 0; pass < WARMUP[modeName].passes; pass++) {
        const warm = await runLoad(def, server.port, { args: WARMUP[modeName].args, timeoutMs: 30_000 })
        if (!warm.ok) return { ...record, ok: false, error: `warm-up failed: ${warm.error}` }
      }
      await sleep(300)
    }
    result.waitedForQuietSeconds = await waitForQuiet(server)
    const countersBefore = await askCounters(server)
    const before = sample(server.pid, server.port)
    const busyBefore = machineBusySeconds()
    const runnerBefore = process.cpuUsage()
    const loadStarted = Date.now()
    let held = null
    const report = await runLoad(
      def,
      server.port,
      mode,
      async (ready) => {
        // Let the server finish what the handshakes started, then sample it with everything open.
        await sleep(500)
        held = { ...sample(server.pid, server.port), sessions: ready.sessions }
        held.counters = await askCounters(server)
      },
      client,
    )
    const after = sample(server.pid, server.port)
    const countersAfter = await askCounters(server)
    const loadSeconds = (Date.now() - loadStarted) / 1000
    const runnerCpu = process.cpuUsage(runnerBefore)
    const busyAfter = machineBusySeconds()
    const alive = !exited(server.child)
    Object.assign(result, { ...record, ok: report.ok && alive && before !== null, report, before, after, held })
    if (!alive) result.error = `the server exited during the run: ${server.stderr().trim().slice(-500)}`
    else if (!report.ok) result.error = report.error
    if (before && after) {
      result.serverCpuSeconds = round(after.cpu - before.cpu, 3)
      result.udpDrops = before.udpDrops === null ? null : after.udpDrops - before.udpDrops
      result.clientCpuSeconds = report.clientCpuSeconds ?? null
      // What the rest of the machine (other processes) used meanwhile, in cores: the noise.
      if (busyBefore !== null && busyAfter !== null && report.clientCpuSeconds != null) {
        const other =
          busyAfter - busyBefore - result.serverCpuSeconds - report.clientCpuSeconds - (runnerCpu.user + runnerCpu.system) / 1e6
        result.loadSeconds = round(loadSeconds, 2)
        result.otherCores = round(Math.max(0, other) / loadSeconds, 2)
      }
    }
    if (held && before && held.sessions > 0) {
      result.rssPerSessionKb = round((held.rssKb - before.rssKb) / held.sessions, 1)
      result.heldRssKb = held.rssKb
    }
    Object.assign(result, { countersBefore, countersAfter })
    // How the run's load spread over the server's endpoints (`workers`): the packets each
    // received, the connections each accepted, and the packets that reached the wrong one.
    const [was, now] = [countersBefore?.workers, countersAfter?.workers]
    if (was && now?.length === was.length) {
      const during = (key) => now.map((w, i) => w[key] - was[i][key])
      result.packetsPerWorker = during('packets')
      result.connectionsPerWorker = during('connections')
      result.misrouted = during('misrouted').reduce((a, b) => a + b, 0)
    }
    return result
  } finally {
    await stopServer(server)
  }
}

/**
 * Waits, in half-second looks, while other processes keep more than 0.3 cores busy, as long as
 * the run's budget for waiting lasts (--quiet-budget); returns the seconds waited.
 */
let quietBudget = Number(option('--quiet-budget') ?? (smoke ? 0 : 60))
async function waitForQuiet(server) {
  let waited = 0
  while (quietBudget > 0) {
    const busy = machineBusySeconds()
    const serverCpu = sample(server.pid, server.port)?.cpu ?? 0
    const runner = process.cpuUsage()
    await sleep(500)
    const runnerCpu = process.cpuUsage(runner)
    const others =
      (machineBusySeconds() - busy - ((sample(server.pid, server.port)?.cpu ?? 0) - serverCpu) - (runnerCpu.user + runnerCpu.system) / 1e6) / 0.5
    if (others < 0.3) break
    waited += 0.5
    quietBudget -= 0.5
  }
  return waited
}

function round(x, digits) {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---------------------------------------------------------------------------------------------
// The run.

const runs = []
const plan = []
for (let rep = 1; rep <= reps; rep++) {
  for (const modeName of modeNames) {
    if (MODES[modeName].once && rep > 1) continue
    // Rotate the order so that no server always goes first after a build or another's run.
    for (let i = 0; i < servers.length; i++) {
      const def = servers[(i + rep - 1) % servers.length]
      const mode = MODES[modeName]
      if ((!def.modes || def.modes.includes(modeName)) && (!mode.servers || mode.servers.includes(def.name))) {
        // The clients of one server run back to back (their ratio is paired within the
        // repetition), in an order that rotates too.
        const mine = clientsFor(def, modeName)
        for (let j = 0; j < mine.length; j++) plan.push([def, modeName, rep, mine[(j + rep - 1) % mine.length]])
      }
    }
  }
}
{
  // Is anything else running? One second of the machine's CPU time, before we start anything.
  const busy = machineBusySeconds()
  await sleep(1000)
  const idleCores = machineBusySeconds() - busy
  if (idleCores > 0.25) log(`bench: warning: other processes are using ${idleCores.toFixed(2)} cores: they will disturb the figures`)
}
log(`bench: ${plan.length} runs (${reps} repetition${reps === 1 ? '' : 's'}${smoke ? ', smoke' : ''}), cert ${certHash.slice(0, 16)}...`)
// A server that cannot start is not tried again, nor one that a client could not reach by that
// client: their other runs fail at once.
const unreachable = new Map()
for (const [i, [def, modeName, rep, client]] of plan.entries()) {
  const t = Date.now()
  const skip = unreachable.get(def.name) ?? unreachable.get(`${def.name} ${client}`)
  const result = skip
    ? { server: def.name, mode: modeName, rep, client, ok: false, error: `skipped: ${skip}` }
    : await runOnce(def, modeName, rep, client)
  if (!result.ok && !skip && (result.startFailed || /^connect: /.test(result.error ?? ''))) {
    const key = result.startFailed ? def.name : `${def.name} ${client}`
    unreachable.set(key, `${def.name} was unreachable earlier${result.startFailed ? '' : ` by ${client}`} (${result.error})`)
  }
  result.wallSeconds = round((Date.now() - t) / 1000, 2)
  runs.push(result)
  const brief = result.ok ? headline(result) : `FAILED: ${result.error}`
  const noise =
    (typeof result.otherCores === 'number' ? `, other processes ${result.otherCores} cores` : '') +
    (result.waitedForQuietSeconds ? `, waited ${result.waitedForQuietSeconds} s for quiet` : '')
  const by = client === 'node' ? ' (node client)' : ''
  log(`[${i + 1}/${plan.length}] ${modeName} ${def.name}${by} #${rep}: ${brief} (${result.wallSeconds} s${noise})`)
}

/** A run's spread over the server's endpoints, for its log line (servers with several). */
function spreadNote(r) {
  if (!(r.packetsPerWorker?.length > 1)) return ''
  const wrong = r.misrouted ? `, ${r.misrouted} packets MISROUTED` : ''
  return `; per endpoint: packets ${r.packetsPerWorker.join(' / ')}, connections ${r.connectionsPerWorker.join(' / ')}${wrong}`
}

function headline(r) {
  const p = r.report
  switch (r.mode) {
    case 'bulk':
      return `${p.mbPerSec.toFixed(1)} MB/s, server CPU ${r.serverCpuSeconds} s`
    case 'rr':
      return `${Math.round(p.streamsPerSec)} streams/s, p50 ${p.p50Ms.toFixed(2)} ms, p99 ${p.p99Ms.toFixed(2)} ms`
    case 'dgram':
    case 'dgram10k':
    case 'dgram8':
    case 'dgramRate':
      return (
        `offered ${Math.round(p.offeredPerSec)}/s, echoed ${Math.round(p.echoedPerSec)}/s, loss ${p.lossPercent.toFixed(2)} %, server socket drops ${r.udpDrops}` +
        (p.sessions > 1 ? `, least-served session ${Math.round(leastServedPercent(r))} % of the mean` : '') +
        (p.sessionsUnanswered ? `, ${p.sessionsUnanswered} sessions got NOTHING back` : '') +
        spreadNote(r)
      )
    case 'http':
      return `${Math.round(p.requestsPerSecond)} GETs/s, p50 ${p.latencyMs.p50.toFixed(2)} ms, p99 ${p.latencyMs.p99.toFixed(2)} ms, server CPU ${r.serverCpuSeconds} s, client CPU ${p.clientCpuSeconds} s`
    default:
      return (
        `${p.opened} ready in ${Math.round(p.allReadyMs)} ms, ${r.rssPerSessionKb} kB/session, server socket drops ${r.udpDrops}` +
        spreadNote(r)
      )
  }
}

// ---------------------------------------------------------------------------------------------
// Summary: per server, the median of each figure over its passing runs.

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return null
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

const METRICS = {
  bulkMBps: ['bulk', (r) => r.report.mbPerSec],
  bulkCpuS: ['bulk', (r) => r.serverCpuSeconds],
  rrStreamsPerSec: ['rr', (r) => r.report.streamsPerSec],
  rrP50Ms: ['rr', (r) => r.report.p50Ms],
  rrP99Ms: ['rr', (r) => r.report.p99Ms],
  rrCpuS: ['rr', (r) => r.serverCpuSeconds],
  dgramEchoPerSec: ['dgram', (r) => r.report.echoedPerSec],
  dgramOfferedPerSec: ['dgram', (r) => r.report.offeredPerSec],
  dgramLossPercent: ['dgram', (r) => r.report.lossPercent],
  dgramServerSocketDrops: ['dgram', (r) => r.udpDrops],
  dgramCpuS: ['dgram', (r) => r.serverCpuSeconds],
  dgram10kLossPercent: ['dgram10k', (r) => r.report.lossPercent],
  dgram10kCpuS: ['dgram10k', (r) => r.serverCpuSeconds],
  dgram8EchoPerSec: ['dgram8', (r) => r.report.echoedPerSec],
  dgram8LossPercent: ['dgram8', (r) => r.report.lossPercent],
  dgram8CpuS: ['dgram8', (r) => r.serverCpuSeconds],
  dgram8ClientCpuS: ['dgram8', (r) => clientCpu(r)],
  dgram8LeastServedPercent: ['dgram8', (r) => leastServedPercent(r)],
  dgramRateLossPercent: ['dgramRate', (r) => r.report.lossPercent],
  dgramRateEchoPerSec: ['dgramRate', (r) => r.report.echoedPerSec],
  sessionsReadyMs: ['sessions', (r) => r.report.allReadyMs],
  sessionsRssPerSessionKb: ['sessions', (r) => r.rssPerSessionKb],
  sessionsServerSocketDrops: ['sessions', (r) => r.udpDrops],
  sessions10kReadyMs: ['sessions10k', (r) => r.report.allReadyMs],
  sessions10kOpened: ['sessions10k', (r) => r.report.opened],
  sessions10kRssMb: ['sessions10k', (r) => (r.heldRssKb ?? NaN) / 1024],
  sessions10kRssPerSessionKb: ['sessions10k', (r) => r.rssPerSessionKb],
  httpRequestsPerSec: ['http', (r) => r.report.requestsPerSecond],
  httpP50Ms: ['http', (r) => r.report.latencyMs.p50],
  httpP99Ms: ['http', (r) => r.report.latencyMs.p99],
  // CPU per request, server and client: which side a protocol's cost lands on.
  httpServerCpuUsPerRequest: ['http', (r) => (r.serverCpuSeconds / r.report.completed) * 1e6],
  httpClientCpuUsPerRequest: ['http', (r) => (r.report.clientCpuSeconds / r.report.completed) * 1e6],
  // The client's CPU over the same work (wt-load: its whole process; the node client: its measured
  // pass, without Node's start): bulk and rr are fixed work, and so is dgram10k (its rate).
  bulkClientCpuS: ['bulk', (r) => clientCpu(r)],
  rrClientCpuS: ['rr', (r) => clientCpu(r)],
  dgramClientCpuS: ['dgram', (r) => clientCpu(r)],
  dgram10kClientCpuS: ['dgram10k', (r) => clientCpu(r)],
  sessionsClientCpuS: ['sessions', (r) => clientCpu(r)],
}
/** Of a multi-session dgram run, the echoes of the least-served session, in % of the mean. */
function leastServedPercent(r) {
  const each = r.report.returnedPerSession
  const mean = each.reduce((a, b) => a + b, 0) / each.length
  return mean ? (100 * Math.min(...each)) / mean : NaN
}
function clientCpu(r) {
  return r.report.measuredCpuSeconds ?? r.report.clientCpuSeconds
}

/** Medians of every metric over the passing runs of `mine` (one server's, by one client). */
function summarize(def, mine) {
  const s = { label: def.label }
  for (const [key, [mode, pick]] of Object.entries(METRICS)) {
    s[key] = median(mine.filter((r) => r.mode === mode && r.ok).map(pick))
  }
  // Idle: a freshly started server, before any client (every run starts one).
  s.idleRssMb = median(mine.map((r) => (r.fresh ?? r.before)?.rssKb / 1024))
  s.failedRuns = mine.filter((r) => !r.ok).length
  // Its endpoints, as its counters list them.
  s.workers = mine.map((r) => r.countersAfter?.workers?.length).find(Boolean) ?? null
  // The spread over the endpoints: that of the run whose busiest endpoint had the median share.
  s.dgram8PacketsPerWorker = medianSpread(mine.filter((r) => r.mode === 'dgram8' && r.ok).map((r) => r.packetsPerWorker))
  s.misroutedPackets = mine.reduce((sum, r) => sum + (r.misrouted ?? 0), 0)
  s.sessionsConnectionsPerWorker = medianSpread(mine.filter((r) => r.mode === 'sessions' && r.ok).map((r) => r.connectionsPerWorker))
  return s
}

/** Of per-endpoint counts (one array per run), the one whose largest share is the median. */
function medianSpread(spreads) {
  const share = (counts) => Math.max(...counts) / (counts.reduce((a, b) => a + b, 0) || 1)
  const known = spreads.filter(Array.isArray).sort((a, b) => share(a) - share(b))
  return known.length ? known[(known.length - 1) >> 1] : null
}

// The first table's and the ratios': wt-load's runs (h3-client's for http), as before the node
// client; the node client's are summarised apart (nodeSummary) and compared per server.
const summary = {}
const nodeSummary = {}
for (const def of servers) {
  summary[def.name] = summarize(def, runs.filter((r) => r.server === def.name && r.client !== 'node'))
  const node = runs.filter((r) => r.server === def.name && r.client === 'node')
  if (node.length) nodeSummary[def.name] = summarize(def, node)
}

const RATIO_KEYS = [
  'bulkMBps',
  'rrStreamsPerSec',
  'rrP99Ms',
  'dgramEchoPerSec',
  'sessionsReadyMs',
  'sessionsRssPerSessionKb',
  'idleRssMb',
  'bulkCpuS',
]
// The http mode's: HTTP/3 on our Server against HTTP/2 on node:http2, the same handler.
const HTTP_RATIO_KEYS = ['httpRequestsPerSec', 'httpP99Ms', 'httpServerCpuUsPerRequest', 'httpClientCpuUsPerRequest', 'idleRssMb']
// The workers comparison's: two endpoints over one, the same server otherwise.
const WORKER_RATIO_KEYS = ['dgram8EchoPerSec', 'dgram8CpuS', 'dgram8ClientCpuS', 'sessionsReadyMs', 'idleRssMb']
const ratios = {}
for (const [name, num, den, keys] of [
  ['js/wtransport', 'js', 'wtransport', RATIO_KEYS],
  ['js-loop/wtransport', 'js-loop', 'wtransport', RATIO_KEYS],
  ['core/wtransport', 'core', 'wtransport', RATIO_KEYS],
  ['js/core', 'js', 'core', RATIO_KEYS],
  ['fetch-h3/fetch-h2', 'fetch-h3', 'fetch-h2', HTTP_RATIO_KEYS],
  ['core-w2/core', 'core-w2', 'core', WORKER_RATIO_KEYS],
  ['js-w2/js', 'js-w2', 'js', WORKER_RATIO_KEYS],
]) {
  if (!summary[num] || !summary[den]) continue
  ratios[name] = {}
  for (const key of keys) {
    // Paired: the ratio within each repetition (the servers run one after the other, seconds
    // apart, so they share the machine's conditions), then the median of those.
    const per = []
    if (key === 'idleRssMb') {
      per.push(summary[num][key] / summary[den][key])
    } else {
      const [mode, pick] = METRICS[key]
      for (let rep = 1; rep <= reps; rep++) {
        const a = runs.find((r) => r.server === num && r.client !== 'node' && r.mode === mode && r.rep === rep && r.ok)
        const b = runs.find((r) => r.server === den && r.client !== 'node' && r.mode === mode && r.rep === rep && r.ok)
        if (a && b && pick(b)) per.push(pick(a) / pick(b))
      }
    }
    const m = median(per)
    ratios[name][key] = m === null ? null : round(m, 2)
  }
}
// The node client against wt-load on the same server, paired within each repetition (the two
// ran back to back, on fresh servers warmed up alike).
const CLIENT_RATIO_KEYS = [
  'bulkMBps',
  'rrStreamsPerSec',
  'rrP99Ms',
  'dgramEchoPerSec',
  'sessionsReadyMs',
  'bulkClientCpuS',
  'rrClientCpuS',
  'dgram10kClientCpuS',
  'bulkCpuS',
  'rrCpuS',
]
const clientRatios = {}
for (const name of Object.keys(nodeSummary)) {
  const r = (clientRatios[name] = {})
  for (const key of CLIENT_RATIO_KEYS) {
    const [mode, pick] = METRICS[key]
    const per = []
    for (let rep = 1; rep <= reps; rep++) {
      const a = runs.find((x) => x.server === name && x.client === 'node' && x.mode === mode && x.rep === rep && x.ok)
      const b = runs.find((x) => x.server === name && x.client === 'wt-load' && x.mode === mode && x.rep === rep && x.ok)
      if (a && b && pick(b)) per.push(pick(a) / pick(b))
    }
    const m = median(per)
    r[key] = m === null ? null : round(m, 2)
  }
}

// ---------------------------------------------------------------------------------------------
// Table.

const fmt = (x, digits = 0) => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }))
const sessionsHeader = smoke ? 'sessions: time to 50 ready' : 'sessions: time to 200 ready'
const header = [
  'server',
  'bulk MB/s',
  'rr streams/s (p99 ms)',
  'dgram echo/s (loss %)',
  'loss at 10k/s',
  sessionsHeader,
  'RSS per session',
  'idle RSS',
  'CPU s bulk / rr / dgram',
]
// The echo table has the servers that ran an echo mode; the http mode and the workers comparison
// have tables of their own.
const ran = (def, test) => runs.some((r) => r.server === def.name && r.client !== 'node' && test(r.mode))
const echoServers = servers.filter((def) => !def.base && ran(def, (m) => m !== 'http' && m !== 'dgram8'))
const httpServers = servers.filter((def) => ran(def, (m) => m === 'http'))
const rows = echoServers.map((def) => {
  const s = summary[def.name]
  return [
    def.label + (s.failedRuns ? ` (${s.failedRuns} failed)` : ''),
    fmt(s.bulkMBps, 1),
    `${fmt(s.rrStreamsPerSec)} (${fmt(s.rrP99Ms, 2)})`,
    `${fmt(s.dgramEchoPerSec)} (${fmt(s.dgramLossPercent, 1)} %)`,
    `${fmt(s.dgram10kLossPercent, 2)} %`,
    `${fmt(s.sessionsReadyMs)} ms`,
    `${fmt(s.sessionsRssPerSessionKb, 1)} kB`,
    `${fmt(s.idleRssMb, 1)} MB`,
    `${fmt(s.bulkCpuS, 2)} / ${fmt(s.rrCpuS, 2)} / ${fmt(s.dgramCpuS, 2)}`,
  ]
})
const ratioLabel = { 'js/wtransport': '(a) / (c)', 'js-loop/wtransport': "(a') / (c)", 'core/wtransport': '(b) / (c)', 'js/core': '(a) / (b)' }
const x = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(2)}x`)
for (const [name, r] of Object.entries(ratios)) {
  if (!ratioLabel[name]) continue
  rows.push([
    `ratio ${ratioLabel[name]}`,
    x(r.bulkMBps),
    `${x(r.rrStreamsPerSec)} (${x(r.rrP99Ms)})`,
    x(r.dgramEchoPerSec),
    '',
    x(r.sessionsReadyMs),
    x(r.sessionsRssPerSessionKb),
    x(r.idleRssMb),
    `${x(r.bulkCpuS)} (bulk)`,
  ])
}
const markdown = (head, body) => [head, head.map(() => '---'), ...body].map((r) => `| ${r.join(' | ')} |`).join('\n')
const echoTable = echoServers.length ? markdown(header, rows) : null

// The workers comparison: per pair that ran, the server with one endpoint, with two, the ratio.
const split = (counts) => (counts ? counts.map((n) => fmt(n)).join(' / ') : '—')
const workerHeader = [
  'server',
  'dgram, 8 sessions: echo/s (loss %)',
  'least-served session, % of the mean',
  'packets per endpoint',
  'CPU s server / client',
  sessionsHeader,
  'connections per endpoint',
  'idle RSS',
]
const workerRows = []
for (const two of servers.filter((d) => d.base && summary[d.base] && ran(d, () => true))) {
  for (const def of [servers.find((d) => d.name === two.base), two]) {
    const s = summary[def.name]
    workerRows.push([
      def.label + (def.base ? '' : `, workers: ${s.workers ?? 'default'}`) + (s.failedRuns ? ` (${s.failedRuns} failed)` : ''),
      `${fmt(s.dgram8EchoPerSec)} (${fmt(s.dgram8LossPercent, 1)} %)`,
      `${fmt(s.dgram8LeastServedPercent)} %`,
      split(s.dgram8PacketsPerWorker) + (s.misroutedPackets ? ` (${fmt(s.misroutedPackets)} misrouted)` : ''),
      `${fmt(s.dgram8CpuS, 2)} / ${fmt(s.dgram8ClientCpuS, 2)}`,
      `${fmt(s.sessionsReadyMs)} ms`,
      split(s.sessionsConnectionsPerWorker),
      `${fmt(s.idleRssMb, 1)} MB`,
    ])
  }
  const r = ratios[`${two.name}/${two.base}`]
  workerRows.push([
    `ratio ${two.name} / ${two.base}`,
    x(r.dgram8EchoPerSec),
    '',
    '',
    `${x(r.dgram8CpuS)} / ${x(r.dgram8ClientCpuS)}`,
    x(r.sessionsReadyMs),
    '',
    x(r.idleRssMb),
  ])
}
const workerTable = workerRows.length ? markdown(workerHeader, workerRows) : null

const httpHeader = ['server', 'GETs/s', 'p50 ms', 'p99 ms', 'server CPU µs per GET', 'client CPU µs per GET', 'idle RSS']
const httpRows = httpServers.map((def) => {
  const s = summary[def.name]
  return [
    def.label + (s.failedRuns ? ` (${s.failedRuns} failed)` : ''),
    fmt(s.httpRequestsPerSec),
    fmt(s.httpP50Ms, 2),
    fmt(s.httpP99Ms, 2),
    fmt(s.httpServerCpuUsPerRequest, 1),
    fmt(s.httpClientCpuUsPerRequest, 1),
    `${fmt(s.idleRssMb, 1)} MB`,
  ]
})
const httpRatio = ratios['fetch-h3/fetch-h2']
if (httpRatio) {
  httpRows.push([
    'ratio (d) / (e), HTTP/3 / HTTP/2',
    x(httpRatio.httpRequestsPerSec),
    '',
    x(httpRatio.httpP99Ms),
    x(httpRatio.httpServerCpuUsPerRequest),
    x(httpRatio.httpClientCpuUsPerRequest),
    x(httpRatio.idleRssMb),
  ])
}
const httpTable = httpServers.length ? markdown(httpHeader, httpRows) : null

// The clients: per server the node client loaded, wt-load's row, the node client's, their ratio.
const clientHeader = [
  'server',
  'client',
  'bulk MB/s',
  'rr streams/s (p99 ms)',
  'dgram echo/s (loss %)',
  'loss at 10k/s',
  sessionsHeader,
  'client CPU s bulk / rr / 10k',
  'server CPU s bulk / rr',
]
const clientRows = []
for (const def of servers.filter((d) => nodeSummary[d.name])) {
  for (const [client, s] of [
    ['wt-load', summary[def.name]],
    ['node', nodeSummary[def.name]],
  ]) {
    clientRows.push([
      def.label,
      client + (s.failedRuns ? ` (${s.failedRuns} failed)` : ''),
      fmt(s.bulkMBps, 1),
      `${fmt(s.rrStreamsPerSec)} (${fmt(s.rrP99Ms, 2)})`,
      `${fmt(s.dgramEchoPerSec)} (${fmt(s.dgramLossPercent, 1)} %)`,
      `${fmt(s.dgram10kLossPercent, 2)} %`,
      `${fmt(s.sessionsReadyMs)} ms`,
      `${fmt(s.bulkClientCpuS, 2)} / ${fmt(s.rrClientCpuS, 2)} / ${fmt(s.dgram10kClientCpuS, 2)}`,
      `${fmt(s.bulkCpuS, 2)} / ${fmt(s.rrCpuS, 2)}`,
    ])
  }
  const r = clientRatios[def.name]
  clientRows.push([
    def.label,
    'ratio node / wt-load',
    x(r.bulkMBps),
    `${x(r.rrStreamsPerSec)} (${x(r.rrP99Ms)})`,
    x(r.dgramEchoPerSec),
    '',
    x(r.sessionsReadyMs),
    `${x(r.bulkClientCpuS)} / ${x(r.rrClientCpuS)} / ${x(r.dgram10kClientCpuS)}`,
    `${x(r.bulkCpuS)} / ${x(r.rrCpuS)}`,
  ])
}
const clientTable = clientRows.length ? markdown(clientHeader, clientRows) : null
const table = [echoTable, workerTable, httpTable, clientTable].filter(Boolean).join('\n\n')

const durationSeconds = round((Date.now() - started) / 1000, 1)
const noise = runs.map((r) => r.otherCores).filter((x) => typeof x === 'number')
const machine = {
  nproc: os.availableParallelism(),
  cpu: /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model,
  memory: spawnSync('free', ['-h'], { encoding: 'utf8' }).stdout?.trim(),
  kernel: os.release(),
  node: process.version,
  rustc: spawnSync('rustc', ['--version'], { encoding: 'utf8' }).stdout?.trim(),
  commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout?.trim() || null,
  uncommittedFiles: spawnSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).stdout?.split('\n').filter(Boolean).length ?? null,
  loadAverageAtStart: loadAtStart,
  loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
  otherProcessesCores: { median: median(noise), max: noise.length ? Math.max(...noise) : null },
}

console.log(`\n${table}\n`)
if (dgramRate) {
  console.log(`datagrams at a fixed ${dgramRate}/s:`)
  for (const def of servers) {
    const s = summary[def.name]
    console.log(`  ${def.label}: ${fmt(s.dgramRateEchoPerSec)} echoed/s, loss ${fmt(s.dgramRateLossPercent, 2)} %`)
    const n = nodeSummary[def.name]
    if (n) console.log(`  ${def.label}, node client: ${fmt(n.dgramRateEchoPerSec)} echoed/s, loss ${fmt(n.dgramRateLossPercent, 2)} %`)
  }
}
if (flag('--big') && servers.some((d) => summary[d.name].sessions10kOpened !== null)) {
  console.log('10,000 sessions held (concurrency 500):')
  for (const def of servers) {
    const s = summary[def.name]
    console.log(
      `  ${def.label}: ${fmt(s.sessions10kOpened)} opened in ${fmt(s.sessions10kReadyMs)} ms, RSS ${fmt(s.sessions10kRssMb, 0)} MB (${fmt(s.sessions10kRssPerSessionKb, 1)} kB/session)`,
    )
  }
}
const failed = runs.filter((r) => !r.ok)
console.log(
  `${runs.length} runs, ${failed.length} failed; ${reps} repetition${reps === 1 ? '' : 's'}, medians, ${warmup ? 'each after a warm-up pass' : 'cold servers'}; whole run ${durationSeconds} s on ${machine.nproc} cores (${machine.cpu})`,
)
const waited = runs.reduce((sum, r) => sum + (r.waitedForQuietSeconds ?? 0), 0)
console.log(
  `other processes used ${fmt(machine.otherProcessesCores.median, 2)} cores during a run (median; max ${fmt(machine.otherProcessesCores.max, 2)}); waited ${waited} s in all for them to quiet down; load average at start ${loadAtStart.join(' ')}`,
)
for (const r of failed) console.log(`FAILED ${r.mode} ${r.server} #${r.rep}: ${r.error}`)

const out = option('--out') ?? (smoke ? null : path.join(here, 'results.json'))
if (out) {
  const json = {
    date: new Date().toISOString(),
    smoke,
    reps,
    warmup: warmup
      ? Object.fromEntries(modeNames.filter((m) => WARMUP[m]).map((m) => [m, `${WARMUP[m].passes} x ${WARMUP[m].args.join(' ')}`]))
      : null,
    durationSeconds,
    machine,
    modes: Object.fromEntries(modeNames.map((m) => [m, MODES[m].args.join(' ')])),
    servers: Object.fromEntries(servers.map((d) => [d.name, d.label])),
    clients,
    summary,
    ratios,
    // The node client (bench/node-load.mjs): its medians per server, and node / wt-load per server.
    nodeClient: Object.keys(nodeSummary).length ? { summary: nodeSummary, ratios: clientRatios } : null,
    table,
    runs,
  }
  fs.writeFileSync(out, JSON.stringify(json, null, 2) + '\n')
  console.log(`results written to ${path.relative(process.cwd(), out) || out}`)
}
process.exit(failed.length ? 1 : 0)
