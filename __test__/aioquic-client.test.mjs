// Transport-level cases a browser cannot produce, driven by an aioquic (Python) client:
// - stream4: a GET / on stream 0 (404), then the WebTransport CONNECT on stream 4 (200),
//   then bidi, uni and datagram echo on session 4;
// - late-settings: the client's HTTP/3 SETTINGS arrive 300 ms after its CONNECT;
// - no-webtransport: a client whose SETTINGS lack WebTransport/H3_DATAGRAM is refused
//   with a 4xx, and the connection still serves a GET / afterwards;
// - drain: session.drain() reaches aioquic as a DRAIN_WEBTRANSPORT_SESSION capsule on the CONNECT
//   stream (wtransport 0.7 has no way to see it), and a stream opened after it still echoes;
// - safari-settings: Safari 26.4+'s SETTINGS (WebTransport flow control declared), against a
//   server with its own `flowControl` option: the limits go out in SETTINGS and are counted.
// Needs python3 with aioquic: python3 -m pip install -r __test__/clients/requirements.txt
// (set PYTHON to use another interpreter; .ci/run installs it). Without aioquic every test fails
// with the install hint: a missing client is not a pass.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEchoServer } from './support/echo-server.mjs'
import { runAioquic } from './support/aioquic-client.mjs'

let echo
let tmp
let certPath

before(async () => {
  echo = await startEchoServer()
  tmp = await mkdtemp(join(tmpdir(), 'wt-aioquic-'))
  certPath = join(tmp, 'cert.pem')
  await writeFile(certPath, echo.certificate.cert)
})

after(async () => {
  if (echo) await echo.close()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

function runScenario(scenario, server = echo, pem = certPath) {
  return runAioquic(server, scenario, { pem })
}

function assertPinned(result, context, server = echo) {
  assert.equal(result.handshake?.alpn, 'h3', context)
  assert.equal(result.handshake.certificate.presented, server.hashHex, context)
  assert.equal(result.handshake.certificate.verified, true, context)
}

function assertBidiEcho(result, context) {
  const { bidi } = result
  assert.ok(bidi, context)
  assert.equal(bidi.echoed.length, bidi.sent.length, context)
  assert.equal(bidi.echoed.sha256, bidi.sent.sha256, context)
  assert.equal(bidi.equal, true, context)
  assert.equal(bidi.finReceived, true, context)
  assert.equal(bidi.resetCode, null, context)
}

function assertDatagramEcho(result, sessionId, context) {
  const d = result.datagrams
  assert.ok(d, context)
  assert.equal(d.sent, 20, context)
  assert.ok(d.intact >= 10, `only ${d.intact}/20 datagrams came back intact: ${context}`)
  assert.equal(d.allIntact, true, context)
  assert.equal(d.allTaggedForSession, true, context)
  assert.deepEqual(d.sessionIdsTagged, [sessionId], context)
}

test('CONNECT on stream 4 after a GET on stream 0: 404, then 200 and bidi/uni/datagram echo', async () => {
  const { result, code, context } = await runScenario('stream4')
  assertPinned(result, context)
  assert.equal(result.get.streamId, 0, context)
  assert.equal(result.get.status, 404, context)
  assert.equal(result.connect.streamId, 4, context)
  assert.equal(result.connect.status, 200, context)
  assertBidiEcho(result, context)
  assert.equal(result.uni.equal, true, context)
  assert.equal(result.uni.echoed.sha256, result.uni.sent.sha256, context)
  assert.equal(result.uni.echoSessionId, 4, context)
  assert.equal(result.uni.echoStreamId % 4, 3, `echo must come on a server-opened uni stream: ${context}`)
  assert.equal(result.uni.finReceived, true, context)
  assertDatagramEcho(result, 4, context)
  assert.equal(result.connectionTerminated, null, context)
  assert.deepEqual(result.errors, [], context)
  assert.equal(result.ok, true, context)
  assert.equal(code, 0, context)
})

test('SETTINGS arriving 300 ms after the CONNECT: accepted, echo works', async () => {
  const { result, code, context } = await runScenario('late-settings')
  assertPinned(result, context)
  assert.ok(result.settings.delayMs >= 290, context)
  assert.equal(result.connect.status, 200, context)
  // draft-ietf-webtrans-http3-02 §3.1: servers must not process a WebTransport request
  // before the client's SETTINGS, so the 200 cannot come before they were sent.
  assert.equal(result.settings.responseBeforeSettings, false, context)
  assert.ok(result.connect.responseAtMs >= result.settings.settingsSentAtMs, context)
  assertBidiEcho(result, context)
  assertDatagramEcho(result, result.connect.streamId, context)
  assert.equal(result.connectionTerminated, null, context)
  assert.deepEqual(result.errors, [], context)
  assert.equal(code, 0, context)
})

test('client without WebTransport settings: CONNECT refused with a 4xx, then GET / still 404', async () => {
  const sessionsBefore = echo.sessions.length
  const { result, code, context } = await runScenario('no-webtransport')
  assertPinned(result, context)
  assert.equal(result.localSettings.ENABLE_WEBTRANSPORT, undefined, context)
  assert.equal(result.localSettings.H3_DATAGRAM, undefined, context)
  const status = result.connect.status
  assert.ok(status >= 400 && status < 500, `expected a 4xx refusal, got ${status}: ${context}`)
  assert.equal(result.refused, true, context)
  assert.equal(result.getAfter.status, 404, context)
  assert.equal(result.connectionTerminated, null, context)
  assert.equal(echo.sessions.length, sessionsBefore, `a refused CONNECT must not emit 'session': ${context}`)
  assert.deepEqual(result.errors, [], context)
  assert.equal(code, 0, context)
})

test("Safari's SETTINGS: the flowControl option's limits are sent and enforced, the echo runs within them", async () => {
  const flowControl = { maxData: 300_000, maxStreamsBidi: 7, maxStreamsUni: 3 }
  const server = await startEchoServer({ flowControl })
  const pem = join(tmp, 'flow-cert.pem')
  await writeFile(pem, server.certificate.cert)
  try {
    const { result, code, context } = await runScenario('safari-settings', server, pem)
    assertPinned(result, context, server)
    assert.equal(result.localSettings.ENABLE_WEBTRANSPORT, undefined, context)
    assert.equal(result.localSettings['0x14e9cd29'], 100, context)
    assert.equal(result.serverSettings['0x2b61'], flowControl.maxData, context)
    assert.equal(result.serverSettings['0x2b65'], flowControl.maxStreamsBidi, context)
    assert.equal(result.serverSettings['0x2b64'], flowControl.maxStreamsUni, context)
    assert.equal(result.connect.status, 200, context)
    assertBidiEcho(result, context)
    assert.deepEqual(result.errors, [], context)
    assert.equal(code, 0, context)
    const stats = await server.sessions[0].getStats()
    const flow = stats.flowControl
    assert.ok(flow, `flow control is on for a client that declares it: ${JSON.stringify(stats)}`)
    assert.equal(flow.localMaxData, flowControl.maxData, JSON.stringify(flow))
    assert.equal(flow.localMaxStreamsBidi, flowControl.maxStreamsBidi, JSON.stringify(flow))
    assert.equal(flow.localMaxStreamsUni, flowControl.maxStreamsUni, JSON.stringify(flow))
    assert.equal(flow.streamsOpenedByPeerBidi, 1, JSON.stringify(flow))
    assert.equal(flow.dataReceived, result.bidi.sent.length, JSON.stringify(flow))
    assert.equal(flow.remoteMaxData, 1 << 20, JSON.stringify(flow))
    assert.equal(flow.dataSent, result.bidi.sent.length, JSON.stringify(flow))
  } finally {
    await server.close()
  }
})

test('session.drain(): aioquic reads DRAIN_WEBTRANSPORT_SESSION on the CONNECT stream, then a new stream still echoes', async () => {
  const { result, code, context } = await runScenario('drain')
  assertPinned(result, context)
  assert.equal(result.connect.status, 200, context)
  assert.equal(result.drain.answer, 'draining', context)
  assert.deepEqual(result.drain.capsules, ['0x78ae'], `exactly one capsule, the drain: ${context}`)
  assert.equal(result.drain.sessionStreamEnded, false, `the session stays open: ${context}`)
  assertBidiEcho(result, context)
  assert.deepEqual(result.errors, [], context)
  assert.equal(code, 0, context)
})
