// The echo logic shared by the demo (`npm start`, examples/echo-server.mjs) and the benchmark's
// JS server (bench/js-echo.mjs), written as a user would on the public API: `pipeTo` for every
// bidirectional stream, a read/write loop for datagrams, and each unidirectional stream answered
// whole on a new one.

/**
 * Echoes everything `session` receives until it ends; resolves then (never rejects).
 * `options.bidi(stream)` replaces the echo of each bidirectional stream (the benchmark's
 * bytes-through-JS variant).
 */
export async function echoSession(session, { bidi = ({ readable, writable }) => readable.pipeTo(writable) } = {}) {
  echoDatagrams(session).catch(() => {})
  echoUni(session).catch(() => {})
  try {
    for await (const stream of session.incomingBidirectionalStreams) {
      bidi(stream).catch(() => {})
    }
  } catch {
    // the session ended
  }
}

async function echoDatagrams(session) {
  const writer = session.datagrams.writable.getWriter()
  for await (const datagram of session.datagrams.readable) await writer.write(datagram)
}

async function echoUni(session) {
  for await (const readable of session.incomingUnidirectionalStreams) {
    const chunks = []
    for await (const chunk of readable) chunks.push(chunk)
    const writer = (await session.createUnidirectionalStream()).getWriter()
    for (const chunk of chunks) await writer.write(chunk)
    await writer.close()
  }
}
