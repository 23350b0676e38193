#!/usr/bin/env node
// bench/node-load.mjs: the load generator of bench/ written on this package's own client, the W3C
// `WebTransport` interface (`require('..')`), as a user would write it: the certificate pinned
// with `serverCertificateHashes`, WHATWG readers and writers, nothing internal. It is
// bench/load's `wt-load` (the wtransport crate) in JavaScript: the same modes, options, content,
// checks and JSON report, so that bench/run.mjs treats both alike and can pair them.
//
// Usage:
//   node bench/node-load.mjs --url https://127.0.0.1:PORT/echo --cert-hash <sha256 hex>
//        [--timeout-ms N] [--warmup N] <mode> [mode options]
//
// Modes (as wt-load's):
//   bulk     [--bytes N] [--chunk N]       one bidi stream, N bytes written and read concurrently
//   rr       [--sessions S] [--rounds M] [--size B]
//                                          S sessions x M round trips, each on a fresh bidi stream
//   dgram    [--seconds T] [--size B] [--rate R]
//                                          datagram echo for T s at R/s (no --rate: as fast as
//                                          the client can write them, see below)
//   sessions [--count K] [--concurrency C] [--hold-ms H] [--wait-stdin]
//                                          K sessions opened at once (at most C handshakes at a
//                                          time if given); held until a line (or EOF) on stdin
//                                          with --wait-stdin (at most H ms), else for H ms
//
// --warmup N runs the mode N times more before the measured pass, unmeasured, in the same process
// (new sessions each): wt-load is compiled ahead of time, this client's JavaScript is compiled by
// V8 as it runs, and a long-lived client is warm. The report is the measured pass's.
//
// Prints exactly one JSON line on stdout: {"ok":true,"mode":...} (exit 0) or
// {"ok":false,"error":...} (exit 1; 2 for bad arguments). Every mode is bounded in count and in
// time (--timeout-ms, default 120 s). In `sessions` mode a line {"event":"ready",...} goes to
// stderr once all K are open, so that a runner can sample the server while they are held.
//
// What differs from wt-load, because the W3C API does not show it:
// - dgram at full rate: wt-load waits while QUIC's datagram send buffer is full; a
//   `datagrams.writable` write resolves once the datagram is queued, and when QUIC's buffer is
//   full the oldest queued one is dropped, silently. So this client writes a batch of 64 per turn
//   of the event loop and counts as sent what it wrote; what its own QUIC dropped counts as lost.
//   `sendBufferFull` is null; `packetsSent` (QUIC packets the client sent in the run, each
//   datagram needs one of its own at 1000 bytes) bounds what can have left, and
//   `clientSendDroppedAtLeast` (written minus packets sent) is what its QUIC dropped at least.
// - dgram: received datagrams are counted from `getStats().datagrams` (`received`, which
//   includes those the session's queue dropped before the reader took them, `droppedIncoming`),
//   as wt-load counts what reached its QUIC; a datagram for another session cannot reach this
//   session's readable, so that check is the library's.
// - `threads` is null: the client runs on Node's thread and the addon's tokio runtime (one worker
//   per core but one), not a runtime of its own size.
import { createRequire } from 'node:module'
import { readdirSync, readlinkSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

const require = createRequire(import.meta.url)
const { WebTransport } = require('..')

const USAGE =
  'usage: node bench/node-load.mjs --url https://HOST:PORT/PATH --cert-hash <sha256 hex> [--timeout-ms N] [--warmup N] <mode> [options]\n' +
  'modes: bulk [--bytes N] [--chunk N] | rr [--sessions S] [--rounds M] [--size B] | ' +
  'dgram [--seconds T] [--size B] [--rate R] | sessions [--count K] [--concurrency C] [--hold-ms H] [--wait-stdin]'

// ---------------------------------------------------------------------------------------------
// The report: one JSON line, fields in wt-load's order, floats to 4 decimals as it prints them.

class Report {
  constructor(ok = true, fields = {}) {
    this.ok = ok
    this.fields = fields
  }
  static fail(error) {
    return new Report(false, { error: String(error) })
  }
  with(key, value) {
    this.fields[key] = value
    return this
  }
  /** Turns the report into a failure unless `cond` holds (the first failure is kept). */
  require(cond, error) {
    if (this.ok && !cond) {
      this.ok = false
      this.fields.error = error()
    }
    return this
  }
  toJSON() {
    const out = { ok: this.ok }
    for (const [k, v] of Object.entries(this.fields)) {
      out[k] = typeof v === 'number' && !Number.isInteger(v) ? (Number.isFinite(v) ? Math.round(v * 1e4) / 1e4 : null) : v ?? null
    }
    return out
  }
}

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message)
}

// ---------------------------------------------------------------------------------------------
// Arguments: wt-load's.

const MODE_OPTIONS = {
  bulk: ['bytes', 'chunk'],
  rr: ['sessions', 'rounds', 'size'],
  dgram: ['seconds', 'size', 'rate'],
  sessions: ['count', 'concurrency', 'hold-ms', 'wait-stdin'],
}
const FLAGS = ['wait-stdin']

function parseArgs(argv) {
  let url
  let certHash
  let timeoutMs = 120_000
  let warmup = 0
  const positional = []
  const opts = new Map()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = (name) => {
      if (i + 1 >= argv.length) throw new Error(`${name} needs a value`)
      return argv[++i]
    }
    if (arg === '-h' || arg === '--help') throw new Error(USAGE)
    else if (arg === '--url') url = value('--url')
    else if (arg === '--cert-hash') certHash = parseHexHash(value('--cert-hash'))
    else if (arg === '--timeout-ms') {
      const v = value('--timeout-ms')
      if (!/^\d+$/.test(v)) throw new Error(`bad --timeout-ms ${JSON.stringify(v)}`)
      timeoutMs = Math.max(1, Number(v))
    } else if (arg === '--warmup') {
      const v = value('--warmup')
      if (!/^\d+$/.test(v)) throw new Error(`bad --warmup ${JSON.stringify(v)}`)
      warmup = Number(v)
    } else if (arg.startsWith('--')) {
      const name = arg.slice(2)
      opts.set(name, FLAGS.includes(name) ? null : value(arg))
    } else positional.push(arg)
  }
  if (!url) throw new Error(`--url is required\n${USAGE}`)
  if (!certHash) throw new Error(`--cert-hash is required\n${USAGE}`)
  if (positional.length !== 1) throw new Error(`exactly one mode is expected\n${USAGE}`)
  const mode = positional[0]
  const allowed = MODE_OPTIONS[mode]
  if (!allowed) throw new Error(`unknown mode ${JSON.stringify(mode)}\n${USAGE}`)
  for (const name of opts.keys()) if (!allowed.includes(name)) throw new Error(`--${name} is not an option of ${mode}\n${USAGE}`)
  const num = (name, fallback) => {
    if (!opts.has(name)) return fallback
    const v = opts.get(name)
    if (!/^\d+$/.test(v)) throw new Error(`bad --${name} ${JSON.stringify(v)}`)
    return Number(v)
  }
  return { url, certHash, timeoutMs, warmup, mode, num, has: (name) => opts.has(name) }
}

function parseHexHash(s) {
  const clean = s.replace(/[:\s]/g, '')
  if (clean.length !== 64) throw new Error(`--cert-hash must be 64 hex digits, got ${clean.length}`)
  if (!/^[0-9a-fA-F]+$/.test(clean)) throw new Error(`--cert-hash is not hex: ${JSON.stringify(s)}`)
  return Buffer.from(clean, 'hex')
}

// ---------------------------------------------------------------------------------------------
// Content: wt-load's table, byte for byte, so that filling and checking are copies and compares.

const PERIOD = 65521
const MAX_SLICE = 256 * 1024
const TABLE = Buffer.alloc(PERIOD + MAX_SLICE)
for (let i = 0; i < TABLE.length; i++) {
  const j = i % PERIOD
  TABLE[i] = ((j * 131) ^ (j >> 9)) % 251
}

/** `len` bytes of content starting at stream offset `offset` (a view of the table: never written). */
function content(offset, len) {
  const start = Number(BigInt(offset) % BigInt(PERIOD))
  return TABLE.subarray(start, start + len)
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const elapsedMs = (t) => performance.now() - t

// ---------------------------------------------------------------------------------------------
// Sessions.

let args

function open() {
  return new WebTransport(args.url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: args.certHash }] })
}

async function connect() {
  const wt = open()
  try {
    await wt.ready
  } catch (error) {
    fail(`connect: ${error.message}`)
  }
  return wt
}

/** Closes the sessions as an HTTP/3 client leaves (code 0) and waits for them to end, at most 2 s. */
async function shutdown(sessions) {
  for (const wt of sessions) {
    try {
      wt.close({ closeCode: 0, reason: '' })
    } catch {}
  }
  await Promise.race([Promise.allSettled(sessions.map((wt) => wt.closed)), sleep(2000)])
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null
  return sorted[clamp(Math.ceil(q * sorted.length), 1, sorted.length) - 1]
}

/** Kernel drops on this process's UDP sockets (receive buffer full), from /proc/net/udp{,6}; null if none found. */
function clientSocketDrops() {
  try {
    const inodes = new Set()
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
        if (m) inodes.add(m[1])
      } catch {}
    }
    let drops = null
    for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/)
        if (cols.length > 9 && inodes.has(cols[9])) drops = (drops ?? 0) + Number(cols[cols.length - 1])
      }
    }
    return drops
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------------
// bulk: one bidi stream, written and read at the same time, every byte checked.

async function bulk() {
  const total = args.num('bytes', 100_000_000)
  const chunk = clamp(args.num('chunk', 64 * 1024), 1, MAX_SLICE)
  const wt = await connect()
  let stream
  try {
    stream = await wt.createBidirectionalStream()
  } catch (error) {
    fail(`open_bi: ${error.message}`)
  }
  const started = performance.now()
  const write = (async () => {
    const writer = stream.writable.getWriter()
    let sent = 0
    try {
      while (sent < total) {
        const n = Math.min(total - sent, chunk)
        // Up to the writable's high-water mark of writes in flight, as a pipe keeps them.
        await writer.ready
        writer.write(content(sent, n)).catch(() => {})
        sent += n
      }
      await writer.close()
    } catch (error) {
      fail(`write at offset ${sent}: ${error.message}`)
    }
    return elapsedMs(started)
  })()
  const read = (async () => {
    const reader = stream.readable.getReader()
    let received = 0
    let firstMismatch = null
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return { received, firstMismatch }
        const n = value.byteLength
        if (received + n > total) fail(`more bytes came back than were sent (${received + n} > ${total})`)
        const got = Buffer.from(value.buffer, value.byteOffset, n)
        if (firstMismatch === null && !got.equals(content(received, n))) {
          let j = 0
          while (j < n && got[j] === content(received + j, 1)[0]) j++
          firstMismatch = received + j
        }
        received += n
      }
    } catch (error) {
      if (error instanceof Failure) throw error
      fail(`read after ${received} bytes: ${error.message}`)
    }
  })()
  const [written, readResult] = await Promise.allSettled([write, read])
  const elapsed = elapsedMs(started) / 1000
  await shutdown([wt])
  if (readResult.status === 'rejected') throw readResult.reason
  if (written.status === 'rejected') throw written.reason
  const { received, firstMismatch } = readResult.value
  return new Report()
    .with('bytes', total)
    .with('received', received)
    .with('seconds', elapsed)
    .with('writeSeconds', written.value / 1000)
    .with('mbPerSec', total / 1e6 / elapsed)
    .with('firstMismatch', firstMismatch)
    .require(received === total, () => `received ${received} of ${total} bytes`)
    .require(firstMismatch === null, () => `content differs at offset ${firstMismatch}`)
}

// ---------------------------------------------------------------------------------------------
// rr: request/response round trips, each on a fresh bidi stream.

/** The request of round `round` of session `session`: its ids, then table content (wt-load's). */
function rrRequest(session, round, size) {
  const out = Buffer.alloc(size)
  const id = (BigInt(session) << 32n) | BigInt(round)
  const head = Buffer.alloc(8)
  head.writeBigUInt64LE(BigInt.asUintN(64, id))
  const mask = (1n << 64n) - 1n
  const offset = ((BigInt(session) * 1_000_003n) & mask) ^ ((BigInt(round) * 7919n) & mask)
  head.copy(out, 0, 0, Math.min(8, size))
  if (size > 8) content(offset, size - 8).copy(out, 8)
  return out
}

async function rrSession(wt, session, rounds, size) {
  const latencies = []
  const limit = Math.max(size, 64) * 2
  for (let round = 0; round < rounds; round++) {
    const where = `session ${session} round ${round}`
    const request = rrRequest(session, round, size)
    const t = performance.now()
    let stream
    try {
      stream = await wt.createBidirectionalStream()
    } catch (error) {
      fail(`${where}: open_bi: ${error.message}`)
    }
    const writer = stream.writable.getWriter()
    try {
      await writer.write(request)
      await writer.close()
    } catch (error) {
      fail(`${where}: write: ${error.message}`)
    }
    const reader = stream.readable.getReader()
    const chunks = []
    let got = 0
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        got += value.byteLength
        if (got > limit) fail(`${where}: more than ${size} bytes came back`)
        chunks.push(value)
      }
    } catch (error) {
      if (error instanceof Failure) throw error
      fail(`${where}: read after ${got} bytes: ${error.message}`)
    }
    latencies.push(elapsedMs(t))
    const response = chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, got) : Buffer.concat(chunks, got)
    if (!response.equals(request)) fail(`${where}: the response (${got} bytes) differs from the request`)
  }
  return latencies
}

async function rr() {
  const sessions = clamp(args.num('sessions', 10), 1, 10_000)
  const rounds = clamp(args.num('rounds', 500), 1, 10_000_000)
  const size = clamp(args.num('size', 64), 8, 65536)
  const opened = await Promise.allSettled(Array.from({ length: sessions }, () => connect()))
  const conns = opened.filter((r) => r.status === 'fulfilled').map((r) => r.value)
  const refused = opened.find((r) => r.status === 'rejected')
  if (refused) {
    await shutdown(conns)
    throw refused.reason
  }
  const started = performance.now()
  const results = await Promise.allSettled(conns.map((wt, i) => rrSession(wt, i, rounds, size)))
  const elapsed = elapsedMs(started) / 1000
  await shutdown(conns)
  const failure = results.find((r) => r.status === 'rejected')
  if (failure) throw failure.reason
  const latencies = results.flatMap((r) => r.value).sort((a, b) => a - b)
  const done = latencies.length
  return new Report()
    .with('sessions', sessions)
    .with('rounds', rounds)
    .with('size', size)
    .with('streams', done)
    .with('seconds', elapsed)
    .with('streamsPerSec', done / elapsed)
    .with('p50Ms', percentile(latencies, 0.5))
    .with('p99Ms', percentile(latencies, 0.99))
    .with('maxMs', latencies.at(-1) ?? null)
    .require(done === sessions * rounds, () => `${done} of ${sessions * rounds} round trips completed`)
}

// ---------------------------------------------------------------------------------------------
// dgram: datagram echo, at a fixed rate or as fast as the client writes them.

/** Datagram `seq`: its sequence number, then table content that depends on it (wt-load's). */
function fillDatagram(buf, seq) {
  buf.writeUInt32LE(seq % 2 ** 32, 0)
  buf.writeUInt32LE(Math.floor(seq / 2 ** 32), 4)
  content(BigInt.asUintN(64, BigInt(seq) * 997n), buf.length - 8).copy(buf, 8)
}

/** Echoed datagrams: counted once each by sequence number, every one checked. */
class Tally {
  constructor(size) {
    this.size = size
    this.seen = new Uint8Array(1 << 16)
    this.expected = Buffer.alloc(size)
    this.echoed = 0
    this.duplicates = 0
    this.bad = null
  }

  check(payload) {
    const size = this.size
    if (payload.byteLength !== size) {
      this.bad ??= `a datagram of ${payload.byteLength} bytes came back, ${size} sent`
      return
    }
    const got = Buffer.from(payload.buffer, payload.byteOffset, size)
    const seq = got.readUInt32LE(0) + got.readUInt32LE(4) * 2 ** 32
    fillDatagram(this.expected, seq)
    if (!got.equals(this.expected)) {
      this.bad ??= `datagram ${seq} came back altered`
      return
    }
    const byte = Math.floor(seq / 8)
    if (byte >= this.seen.length) {
      if (byte > 800_000_000) {
        this.bad ??= `datagram with impossible sequence number ${seq}`
        return
      }
      const grown = new Uint8Array(Math.max(byte + 1, this.seen.length * 2))
      grown.set(this.seen)
      this.seen = grown
    }
    const bit = 1 << (seq % 8)
    if (this.seen[byte] & bit) this.duplicates++
    else {
      this.seen[byte] |= bit
      this.echoed++
    }
  }
}

async function dgram() {
  const seconds = clamp(args.num('seconds', 5), 1, 600)
  const size = clamp(args.num('size', 1000), 16, 65536)
  const rate = args.has('rate') && args.num('rate', 0) > 0 ? args.num('rate', 0) : null
  const wt = await connect()
  try {
    const max = wt.datagrams.maxDatagramSize
    if (!(max >= size)) fail(`the session takes datagrams of at most ${max} bytes, ${size} wanted`)
    const statsBefore = await wt.getStats()
    const durationMs = seconds * 1000
    const writer = wt.datagrams.writable.getWriter()
    const reader = wt.datagrams.readable.getReader()
    const tally = new Tally(size)
    let sending = true
    let lastArrival = performance.now()
    const started = performance.now()

    const send = (async () => {
      let seq = 0
      const one = async () => {
        // A buffer per datagram: a write that waits behind others is copied only when its turn comes.
        const buf = Buffer.allocUnsafe(size)
        fillDatagram(buf, seq)
        await writer.ready
        writer.write(buf).catch(() => {})
        seq++
      }
      try {
        for (;;) {
          const now = performance.now()
          if (now - started >= durationMs) break
          if (rate === null) {
            for (let batch = 0; batch < 64; batch++) await one()
            // A turn of the event loop between batches, so that what comes back is read meanwhile.
            await new Promise((resolve) => setImmediate(resolve))
          } else {
            const due = Math.floor((rate * (now - started)) / 1000)
            while (seq < due) await one()
            await sleep(1)
          }
        }
      } catch (error) {
        fail(`send datagram ${seq}: ${error.message}`)
      }
      const sendTime = elapsedMs(started)
      sending = false
      return { sent: seq, sendTime }
    })()

    const receive = (async () => {
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          lastArrival = performance.now()
          tally.check(value)
        }
      })()
      // Stragglers: once sending stopped, wait until nothing came for 300 ms, at most 2 s.
      let doneAt = null
      for (;;) {
        await Promise.race([sleep(20), reading])
        if (!sending) {
          doneAt ??= performance.now()
          if (performance.now() - lastArrival > 300 || performance.now() - doneAt > 2000) break
        }
      }
      reader.cancel().catch(() => {})
      await reading.catch((error) => fail(`receive datagram after ${tally.echoed}: ${error.message}`))
    })()

    const [sentResult, receiveResult] = await Promise.allSettled([send, receive])
    if (sentResult.status === 'rejected') throw sentResult.reason
    if (receiveResult.status === 'rejected') throw receiveResult.reason
    const { sent, sendTime } = sentResult.value
    const stats = await wt.getStats()
    const socketDrops = clientSocketDrops()
    // What reached this session (read or dropped from its queue before the reader took it) is
    // what the server echoed; wt-load counts what reached its QUIC connection alike.
    const arrived = stats.datagrams.received - statsBefore.datagrams.received
    const droppedIncoming = stats.datagrams.droppedIncoming - statsBefore.datagrams.droppedIncoming
    const { echoed, duplicates, bad } = tally
    const packetsSent = stats.packetsSent - statsBefore.packetsSent
    const secs = sendTime / 1000
    const returned = Math.max(arrived, echoed)
    const loss = sent > 0 ? (100 * Math.max(0, sent - returned)) / sent : 0
    return new Report()
      .with('size', size)
      .with('rate', rate)
      .with('seconds', secs)
      .with('sent', sent)
      .with('returned', returned)
      .with('echoedChecked', echoed)
      .with('offeredPerSec', sent / secs)
      .with('echoedPerSec', returned / secs)
      .with('lossPercent', loss)
      .with('duplicates', duplicates)
      .with('sendBufferFull', null)
      .with('clientDropped', droppedIncoming)
      .with('clientSocketDrops', socketDrops)
      .with('packetsLost', stats.packetsLost - statsBefore.packetsLost)
      .with('packetsSent', packetsSent)
      // Each 1000-byte datagram needs a packet of its own: what was written beyond the packets
      // sent was dropped by this client's own QUIC (its send buffer full), at least.
      .with('clientSendDroppedAtLeast', Math.max(0, sent - packetsSent))
      .require(bad === null, () => bad)
      .require(sent > 0, () => 'no datagram could be sent')
      .require(echoed > 0, () => `none of ${sent} datagrams came back`)
      .require(returned <= sent, () => `${returned} echoes for ${sent} datagrams`)
  } finally {
    await shutdown([wt])
  }
}

// ---------------------------------------------------------------------------------------------
// sessions: K sessions opened at once, held, closed.

/** At most `n` of the functions given to `run` at a time. */
function gate(n) {
  let free = n
  const waiting = []
  return async (fn) => {
    if (free > 0) free--
    else await new Promise((resolve) => waiting.push(resolve))
    try {
      return await fn()
    } finally {
      const next = waiting.shift()
      if (next) next()
      else free++
    }
  }
}

/** Resolves at the first line (or the end) of stdin. */
function stdinLine() {
  return new Promise((resolve) => {
    const done = () => {
      process.stdin.off('data', onData)
      process.stdin.pause()
      resolve()
    }
    const onData = (d) => {
      if (String(d).includes('\n')) done()
    }
    process.stdin.on('data', onData)
    process.stdin.once('end', done)
    process.stdin.once('error', done)
  })
}

async function sessions(warm) {
  const count = clamp(args.num('count', 200), 1, 100_000)
  const hold = args.num('hold-ms', 1000)
  const waitStdin = args.has('wait-stdin') && !warm
  const concurrency = clamp(args.num('concurrency', count), 1, count)
  const handshake = gate(concurrency)
  const started = performance.now()
  const opening = Array.from({ length: count }, () =>
    handshake(async () => {
      const wt = await connect()
      return { wt, ms: elapsedMs(started) }
    }),
  )
  const conns = []
  const times = []
  let failures = 0
  let firstError = null
  for (const r of await Promise.allSettled(opening)) {
    if (r.status === 'fulfilled') {
      conns.push(r.value.wt)
      times.push(r.value.ms)
    } else {
      failures++
      firstError ??= r.reason.message
    }
  }
  const allReadyMs = elapsedMs(started)
  times.sort((a, b) => a - b)
  // Sessions that end while held count as failures too.
  const ended = new Set()
  for (const wt of conns) wt.closed.then(() => ended.add(wt), () => ended.add(wt))
  if (!warm) process.stderr.write(`${JSON.stringify({ event: 'ready', sessions: conns.length, failed: failures, allReadyMs: Math.round(allReadyMs * 10) / 10 })}\n`)
  if (waitStdin) await Promise.race([stdinLine(), sleep(hold)])
  else await sleep(hold)
  const alive = conns.filter((wt) => !ended.has(wt)).length
  // Each held session must still echo one small stream, content-checked.
  const checking = gate(200)
  const checks = await Promise.allSettled(conns.map((wt, i) => checking(() => rrSession(wt, 1_000_000 + i, 1, 32))))
  const echoFailures = checks.filter((r) => r.status === 'rejected')
  const socketDrops = clientSocketDrops()
  await shutdown(conns)
  return new Report()
    .with('count', count)
    .with('opened', conns.length)
    .with('failed', failures)
    .with('aliveAtClose', alive)
    .with('allReadyMs', allReadyMs)
    .with('p50ReadyMs', percentile(times, 0.5))
    .with('clientSocketDrops', socketDrops)
    .with('firstError', firstError)
    .require(failures === 0, () => `${failures} of ${count} sessions failed: ${firstError ?? ''}`)
    .with('echoFailuresAfterHold', echoFailures.length)
    .require(alive === conns.length, () => `${conns.length - alive} of ${conns.length} sessions ended while held`)
    .require(echoFailures.length === 0, () => `${echoFailures.length} held sessions failed their echo: ${echoFailures[0]?.reason.message}`)
}

// ---------------------------------------------------------------------------------------------

const cpuSeconds = (usage = process.cpuUsage()) => (usage.user + usage.system) / 1e6

async function run(warm = false) {
  try {
    switch (args.mode) {
      case 'bulk':
        return await bulk()
      case 'rr':
        return await rr()
      case 'dgram':
        return await dgram()
      case 'sessions':
        return await sessions(warm)
    }
    return Report.fail(`unknown mode ${args.mode}`)
  } catch (error) {
    return Report.fail(error instanceof Failure ? error.message : (error?.stack ?? String(error)))
  }
}

function finish(report, code) {
  process.stdout.write(`${JSON.stringify(report.toJSON())}\n`, () => process.exit(code))
}

try {
  args = parseArgs(process.argv.slice(2))
} catch (error) {
  process.stderr.write(`${error.message}\n`)
  finish(Report.fail(error.message.split('\n')[0]), 2)
}
if (args) {
  const timer = setTimeout(() => {
    finish(
      Report.fail(`timed out after ${args.timeoutMs} ms`).with('mode', args.mode).with('threads', null).with('clientCpuSeconds', cpuSeconds()),
      1,
    )
  }, args.timeoutMs)
  let report
  for (let pass = 0; pass < args.warmup; pass++) {
    report = await run(true)
    if (!report.ok) report.fields.error = `warm-up pass ${pass + 1}: ${report.fields.error}`
    if (!report.ok) break
  }
  let measuredCpu = null
  if (!report || report.ok) {
    const before = process.cpuUsage()
    report = await run()
    measuredCpu = cpuSeconds(process.cpuUsage(before))
  }
  clearTimeout(timer)
  // clientCpuSeconds: the whole process (Node's start and any warm-up included), as wt-load
  // reports its own; measuredCpuSeconds: the measured pass alone.
  report.with('mode', args.mode).with('threads', null).with('warmupPasses', args.warmup)
  report.with('clientCpuSeconds', cpuSeconds()).with('measuredCpuSeconds', measuredCpu)
  finish(report, report.ok ? 0 : 1)
}
