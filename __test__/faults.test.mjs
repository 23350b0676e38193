// JS-side faults and security defaults: a throwing listener, TLS key logging only on request,
// live counters returning to zero once sessions are gone, and a client killed mid-transfer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startEchoServer } from './support/echo-server.mjs'
import { WT_CLIENT_BIN, assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

test('a throwing session listener is reported on error, and the server keeps serving', { timeout: 60_000 }, async () => {
  assertClientBuilt()
  const echo = await startEchoServer()
  try {
    let throws = true
    echo.server.prependListener('session', () => {
      if (throws) {
        throws = false
        throw new Error('listener bug')
      }
    })
    const reported = new Promise((resolve) => echo.server.once('error', resolve))
    const first = await runWtClient(echo, ['bidi-echo', '100'])
    const error = await reported
    assert.equal(error.code, 'WT_ERR_LISTENER_FAILED')
    assert.match(error.message, /listener bug/)
    assert.equal(error.cause.message, 'listener bug')
    // The session itself was accepted before the listener threw; the echo listener still ran.
    assertClientOk(first)
    assertClientOk(await runWtClient(echo, ['bidi-echo', '100']))
  } finally {
    await echo.close()
  }
})

test('without an error listener a throwing listener becomes a process warning, not a crash', { timeout: 60_000 }, async () => {
  const echo = await startEchoServer()
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    echo.server.prependListener('session', () => {
      throw new Error('unhandled listener bug')
    })
    echo.server.prependListener('session', async () => {
      throw new Error('async listener bug')
    })
    assertClientOk(await runWtClient(echo, ['bidi-echo', '10']))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const messages = warnings.map((w) => w.message)
    assert.ok(messages.some((m) => /unhandled listener bug/.test(m)), `warnings: ${messages}`)
    assert.ok(messages.some((m) => /async listener bug/.test(m)), `a rejecting async listener is reported too: ${messages}`)
  } finally {
    process.off('warning', onWarning)
    await echo.close()
  }
})

test('SSLKEYLOGFILE is ignored unless keyLog is true', { timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-keylog-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'keys.log')
  const previous = process.env.SSLKEYLOGFILE
  process.env.SSLKEYLOGFILE = file
  try {
    const quiet = await startEchoServer()
    assertClientOk(await runWtClient(quiet, ['bidi-echo', '10']))
    await quiet.close()
    assert.equal(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', '', 'no secrets written without keyLog')

    const logging = await startEchoServer({ keyLog: true })
    assertClientOk(await runWtClient(logging, ['bidi-echo', '10']))
    await logging.close()
    assert.match(fs.readFileSync(file, 'utf8'), /^(CLIENT|SERVER)_HANDSHAKE_TRAFFIC_SECRET /m)
  } finally {
    if (previous === undefined) delete process.env.SSLKEYLOGFILE
    else process.env.SSLKEYLOGFILE = previous
  }
})

test('live counters return to zero after sessions with streams and datagrams end', { timeout: 60_000 }, async () => {
  const echo = await startEchoServer()
  try {
    for (const scenario of [['bidi-echo', '5000'], ['uni-echo', '5000'], ['datagrams', '20'], ['server-streams']]) {
      assertClientOk(await runWtClient(echo, scenario))
    }
    const during = echo.server.counters()
    assert.equal(during.faults, 0)
    // Clients are gone; their connections close (the client closes them on exit).
    const deadline = Date.now() + 10_000
    let now = echo.server.counters()
    while ((now.sessions > 0 || now.connections > 0 || now.streamHalves > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      now = echo.server.counters()
    }
    const { connections, sessions, faults, streamHalves } = now
    assert.deepEqual({ connections, sessions, faults, streamHalves }, { connections: 0, sessions: 0, faults: 0, streamHalves: 0 })
    assert.ok(now.tasks <= now.workers.length, `only the accept loops remain, one per endpoint (tasks: ${now.tasks})`)
  } finally {
    await echo.close()
  }
})

test('a client killed mid-transfer is noticed within the idle timeout; the server keeps serving', { timeout: 60_000 }, async () => {
  assertClientBuilt()
  const echo = await startEchoServer({ idleTimeout: 1_000 })
  try {
    const client = spawn(WT_CLIENT_BIN, ['--url', echo.url(), '--cert-hash', echo.hashHex, '--timeout-ms', '30000', 'bulk', '500000000'], {
      stdio: 'ignore',
    })
    // Wait until the session is open and bytes are flowing, then kill -9: no close, no FIN.
    const deadline = Date.now() + 10_000
    while (echo.sessions.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(echo.sessions.length, 1, 'the session opened')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const killedAt = Date.now()
    client.kill('SIGKILL')
    const outcome = await echo.sessions[0].closed.then(
      () => 'closed',
      (error) => error,
    )
    const noticedMs = Date.now() - killedAt
    assert.notEqual(outcome, 'closed', 'a killed client cannot have closed cleanly')
    assert.equal(outcome.code, 'WT_ERR_CONNECTION_LOST')
    assert.ok(noticedMs < 5_000, `noticed after ${noticedMs} ms (idle timeout 1000 ms)`)
    const deadlineZero = Date.now() + 5_000
    while ((echo.server.counters().sessions > 0 || echo.server.counters().connections > 0) && Date.now() < deadlineZero) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(echo.server.counters().sessions, 0, 'the session was freed')
    assert.equal(echo.server.counters().connections, 0, 'the connection was freed')
    assertClientOk(await runWtClient(echo, ['bidi-echo', '1000']))
  } finally {
    await echo.close()
  }
})
