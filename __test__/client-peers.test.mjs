// Our WebTransport client against servers that share no code with it: the wtransport crate's
// (tools/wt-server, the pre-draft-15 protocol) and webtransport-go v0.12's (with WebTransport flow
// control), both of support/peer-servers.mjs. Bidi, uni, server-opened streams, datagrams, reset
// codes both ways, close codes and reasons, subprotocols. Where a library cannot do something
// (wtransport 0.7 closes a session only by closing its connection), the test asserts what our
// client makes of it.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { WebTransport, WebTransportError } from '../index.js'
import { startWtransportServer, startGoServer } from './support/peer-servers.mjs'
import { withTimeout } from './support/browser.mjs'

const PEERS = [
  // wtransport 0.7 reports a session our capsule closed as a closed connection, with the capsule's code and reason.
  { name: 'wtransport 0.7 (tools/wt-server)', start: startWtransportServer, capsuleClose: false, flowControl: false, token: 'webtransport', closeVia: 'connection-close' },
  { name: 'webtransport-go v0.12 (wtgo-server)', start: startGoServer, capsuleClose: true, flowControl: true, token: 'webtransport-h3', closeVia: 'capsule' },
]

const encoder = new TextEncoder()
const pattern = (length, seed) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 255)
const collect = async (readable) => Buffer.concat(await Array.fromAsync(readable))

for (const peer of PEERS) {
  describe(`our client against ${peer.name}`, () => {
    let server
    before(async () => {
      server = await peer.start({ protocols: ['chat-v2', 'chat-v1'] })
    })
    after(() => server?.close())

    const open = async (path, options = {}) => {
      const wt = new WebTransport(server.url(path), {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(server.hashHex, 'hex') }],
        ...options,
      })
      await withTimeout(wt.ready, 10_000, 'wt.ready')
      return wt
    }
    const exchange = async (wt, bytes) => {
      const stream = await wt.createBidirectionalStream()
      const reply = collect(stream.readable)
      const writer = stream.writable.getWriter()
      await writer.write(bytes)
      await writer.close()
      return withTimeout(reply, 10_000, 'the echo')
    }

    test('bidi, uni and server-opened streams echo byte-exact', { timeout: 30_000 }, async () => {
      const wt = await open('/streams')
      const payload = pattern(300_000, 1)
      assert.ok((await exchange(wt, payload)).equals(payload), 'bidi echo differs')

      const incomingUni = wt.incomingUnidirectionalStreams.getReader()
      const uni = (await wt.createUnidirectionalStream()).getWriter()
      const uniPayload = pattern(50_000, 2)
      await uni.write(uniPayload)
      await uni.close()
      const back = await withTimeout(incomingUni.read(), 10_000, 'the uni answer')
      assert.ok((await collect(back.value)).equals(Buffer.from(uniPayload)), 'uni echo differs')

      await exchange(wt, encoder.encode('open-bidi\n'))
      const bidi = await withTimeout(wt.incomingBidirectionalStreams.getReader().read(), 10_000, 'a server bidi stream')
      assert.equal((await collect(bidi.value.readable)).toString(), 'server bidi')
      await exchange(wt, encoder.encode('open-uni\n'))
      const serverUni = await withTimeout(incomingUni.read(), 10_000, 'a server uni stream')
      assert.equal((await collect(serverUni.value)).toString(), 'server uni')
      wt.close()
      await wt.closed.catch(() => {})
    })

    test('datagrams echo both ways', { timeout: 30_000 }, async () => {
      const wt = await open('/datagrams')
      const writer = wt.datagrams.writable.getWriter()
      const reader = wt.datagrams.readable.getReader()
      const wanted = new Set(Array.from({ length: 50 }, (_, i) => `datagram-${i}`))
      const seen = new Set()
      // Datagrams may be lost even on loopback: resend what has not come back, a bounded number of rounds.
      // One read outstanding at a time: a read the timer beat still takes the next datagram.
      let pending = null
      for (let round = 0; round < 10 && seen.size < wanted.size; round++) {
        for (const text of wanted) if (!seen.has(text)) await writer.write(encoder.encode(text))
        const deadline = Date.now() + 500
        while (seen.size < wanted.size && Date.now() < deadline) {
          pending ??= reader.read()
          let timer
          const next = await Promise.race([pending, new Promise((resolve) => (timer = setTimeout(() => resolve(null), deadline - Date.now())))])
          clearTimeout(timer)
          if (next === null) continue
          pending = null
          if (next.value) seen.add(Buffer.from(next.value).toString())
        }
      }
      assert.deepEqual([...seen].sort(), [...wanted].sort())
      assert.ok(wt.datagrams.maxDatagramSize > 1000, String(wt.datagrams.maxDatagramSize))
      wt.close()
      await wt.closed.catch(() => {})
    })

    test('reset codes both ways, 0 to 2^32-1', { timeout: 30_000 }, async () => {
      const wt = await open('/codes')
      for (const code of [0, 7, 0xffffffff]) {
        const reset = await wt.createBidirectionalStream()
        const writer = reset.writable.getWriter()
        await writer.write(encoder.encode(`reset ${code}\n`))
        const error = await reset.readable.getReader().read().then(() => null, (e) => e)
        assert.ok(error instanceof WebTransportError, `the server's reset ${code}: ${error}`)
        assert.equal(error.streamErrorCode, code)

        const ours = await wt.createBidirectionalStream()
        const ourWriter = ours.writable.getWriter()
        await ourWriter.write(encoder.encode(`data before the reset ${code}`))
        await ours.readable.getReader().read()
        await ourWriter.abort(new WebTransportError({ streamErrorCode: code }))
        const seen = await server.waitFor((l) => l.streamError?.path === '/codes' && l.streamError.kind === 'read' && l.streamError.code === code, 5_000)
        assert.equal(seen.streamError.code, code)
      }
      wt.close()
      await wt.closed.catch(() => {})
    })

    test('our close code and reason reach the server; its close reaches us', { timeout: 30_000 }, async () => {
      const wt = await open('/our-close')
      await exchange(wt, encoder.encode('a stream first'))
      wt.close({ closeCode: 0xffffffff, reason: 'client says bye' })
      assert.deepEqual(await wt.closed, { closeCode: 0xffffffff, reason: 'client says bye' })
      const closed = (await server.waitFor((l) => l.sessionClosed?.path === '/our-close', 5_000)).sessionClosed
      assert.deepEqual({ code: closed.code, reason: closed.reason, via: closed.via }, { code: 0xffffffff, reason: 'client says bye', via: peer.closeVia })

      const theirs = await open('/their-close')
      const command = (await theirs.createBidirectionalStream()).writable.getWriter()
      await command.write(encoder.encode('close 4711 server says bye\n'))
      if (peer.capsuleClose) {
        assert.deepEqual(await withTimeout(theirs.closed, 10_000, 'closed'), { closeCode: 4711, reason: 'server says bye' })
      } else {
        // wtransport 0.7 has no session close: it closes the QUIC connection with the code, which
        // a client cannot take for a session close (the draft's close is the capsule).
        const error = await withTimeout(theirs.closed.then(() => null, (e) => e), 10_000, 'closed')
        assert.ok(error instanceof WebTransportError, String(error))
        assert.equal(error.source, 'session')
        assert.match(error.message, /server says bye/)
      }
    })

    test('subprotocols: the server picks among those offered; the token fits its draft', { timeout: 30_000 }, async () => {
      const offered = await open('/chat', { protocols: ['other', 'chat-v1'] })
      assert.equal(offered.protocol, 'chat-v1')
      const session = (await server.waitFor((l) => l.session?.path === '/chat', 5_000)).session
      // The header as it went on the wire: a structured-field list of strings.
      assert.equal(session.availableProtocols, '"other", "chat-v1"')
      assert.equal(session.protocol, 'chat-v1')
      if (session.protocolToken !== undefined) assert.equal(session.protocolToken, peer.token)
      const unmatched = await open('/chat-none', { protocols: ['other'] })
      assert.equal(unmatched.protocol, '')
      for (const wt of [offered, unmatched]) {
        await exchange(wt, encoder.encode('before closing'))
        wt.close()
        await wt.closed.catch(() => {})
      }
    })

    test(`a refusal rejects ready with the status${peer.flowControl ? '; flow control is in use' : ''}`, { timeout: 30_000 }, async () => {
      const refused = new WebTransport(server.url('/status/404'), {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(server.hashHex, 'hex') }],
      })
      const error = await withTimeout(refused.ready.then(() => null, (e) => e), 10_000, 'ready')
      assert.deepEqual({ code: error?.code, status: error?.status, source: error?.source }, { code: 'WT_ERR_SESSION_REFUSED', status: 404, source: 'session' })
      const wt = await open('/stats')
      await exchange(wt, encoder.encode('counted'))
      const { flowControl } = await wt.getStats()
      assert.equal(flowControl !== null, peer.flowControl, JSON.stringify(flowControl))
      wt.close()
      await wt.closed.catch(() => {})
    })
  })
}

test('webtransport-go v0.12 flow control: 40 streams and 4 MB through windows of 4 streams and 64 KiB', { timeout: 60_000 }, async () => {
  const server = await startGoServer({ maxStreams: 4, maxUniStreams: 4, maxData: 64 << 10 })
  try {
    const wt = new WebTransport(server.url('/flow'), {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(server.hashHex, 'hex') }],
    })
    await withTimeout(wt.ready, 10_000, 'wt.ready')
    const payload = Buffer.from(pattern(100_000, 3))
    const echoes = await withTimeout(
      Promise.all(
        Array.from({ length: 40 }, async () => {
          const stream = await wt.createBidirectionalStream()
          const reply = collect(stream.readable)
          const writer = stream.writable.getWriter()
          await writer.write(payload)
          await writer.close()
          return reply
        }),
      ),
      45_000,
      '40 echoes',
    )
    assert.ok(echoes.every((echoed) => echoed.equals(payload)), 'an echo differs')
    const { flowControl } = await wt.getStats()
    assert.ok(flowControl.remoteMaxStreamsBidi >= 40 && flowControl.remoteMaxData >= 4_000_000, JSON.stringify(flowControl))
    assert.ok(flowControl.blocked > 0, 'never waited for the server\'s credit')
    wt.close()
    await wt.closed.catch(() => {})
  } finally {
    await server.close()
  }
})
