// Typings for webtransport-napi. Hand-written: the public API is the JS layer in lib/, which
// wraps the native binding.

import { EventEmitter } from 'node:events'
import type { ReadableStream, WritableStream } from 'node:stream/web'

/** Every error the library throws or emits carries one of these codes (README: "Error codes"). */
export type ErrorCode =
  | 'WT_ERR_INVALID_OPTION'
  | 'WT_ERR_INVALID_CERT'
  | 'WT_ERR_INVALID_KEY'
  | 'WT_ERR_KEY_MISMATCH'
  | 'WT_ERR_BIND'
  | 'WT_ERR_CERT_GENERATION'
  | 'WT_ERR_SERVER_CLOSED'
  | 'WT_ERR_SESSION_CLOSED'
  | 'WT_ERR_STREAM_RESET'
  | 'WT_ERR_STREAM_STOPPED'
  | 'WT_ERR_CONNECTION_LOST'
  | 'WT_ERR_DATAGRAM_TOO_LARGE'
  | 'WT_ERR_DATAGRAMS_UNSUPPORTED'
  | 'WT_ERR_STREAM_LIMIT'
  | 'WT_ERR_HANDSHAKE_FAILED'
  | 'WT_ERR_SESSION_REFUSED'
  | 'WT_ERR_CALLBACK_FAILED'
  | 'WT_ERR_CALLBACK_TIMEOUT'
  | 'WT_ERR_CALLBACK_INVALID_RESULT'
  | 'WT_ERR_LISTENER_FAILED'
  | 'WT_ERR_ADDON_LOAD'
  | 'WT_ERR_INTERNAL'

/** An Error with a library code. */
export interface WebTransportServerError extends Error {
  code: ErrorCode
  /** For WT_ERR_BIND: the OS error name, e.g. 'EADDRINUSE'. */
  systemError?: string
  /** For WT_ERR_BIND: always 'bind'. */
  syscall?: string
}

/** Options of {@link WebTransportError}, as in the W3C API. */
export interface WebTransportErrorOptions {
  source?: 'stream' | 'session'
  /** Application error code (u32) for RESET_STREAM / STOP_SENDING. */
  streamErrorCode?: number | null
}

/**
 * W3C WebTransportError. Pass one to `writable.abort()` or `readable.cancel()` to send an
 * application error code; a peer's reset or stop arrives as one.
 */
export class WebTransportError extends Error {
  constructor(message?: string, options?: WebTransportErrorOptions)
  /** Chromium's form: the options first, with an optional message. */
  constructor(options: WebTransportErrorOptions & { message?: string })
  readonly name: 'WebTransportError'
  readonly source: 'stream' | 'session'
  /** The peer's application code, or null when none was carried. */
  readonly streamErrorCode: number | null
  code?: ErrorCode
  /** For a client session the server refused (WT_ERR_SESSION_REFUSED): its HTTP status. */
  status?: number
}

/** The request that asked for a session (given to callbacks, kept as `session.request`). */
export interface WebTransportRequest {
  /** `https://authority/path`. */
  readonly url: string
  /** `:method`: always 'CONNECT' for a WebTransport request. */
  readonly method: string
  /**
   * `:protocol`, the WebTransport draft the client speaks: 'webtransport' (draft-02 to -14:
   * Chromium, Firefox) or 'webtransport-h3' (draft-15 on). Not the subprotocol: see `protocols`.
   */
  readonly protocol: 'webtransport' | 'webtransport-h3'
  /** `:path`, query included. */
  readonly path: string
  /** `:authority` (host and port the client asked for). */
  readonly authority: string
  /** The `Origin` header; null for non-browser clients that send none. */
  readonly origin: string | null
  /** Header fields by lower-case name; repeated fields joined with ', '. */
  readonly headers: Readonly<Record<string, string>>
  /** Subprotocols the client offered (WT-Available-Protocols), in its order. */
  readonly protocols: readonly string[]
  readonly remoteAddress: string
  readonly remotePort: number
}

/** What `onRequest` may return. */
export type RequestDecision =
  | undefined
  | void
  | number
  | { status?: number; headers?: Record<string, string | number>; protocol?: string }

/** Server options. Every one is validated: a bad value throws a TypeError or RangeError with code WT_ERR_INVALID_OPTION. */
export interface ServerOptions {
  /** UDP port; 0 picks a free one. Default 4433. */
  port?: number
  /** Address to bind; default '::' (dual-stack). 'localhost' binds 127.0.0.1. */
  host?: string
  /** Certificate chain, PEM (leaf first). */
  cert: string | Uint8Array
  /** Private key, PEM: PKCS#8, SEC1 (EC) or PKCS#1 (RSA). */
  key: string | Uint8Array
  /**
   * Replaces the default origin rule (an `Origin` host must equal the request's host; requests
   * without `Origin` pass). Return false to refuse with 403. A throw, rejection, non-boolean or
   * a result later than `callbackTimeout` refuses the request (500, or 503 for the timeout) and
   * emits 'requestError'.
   */
  checkOrigin?: (origin: string | null, request: WebTransportRequest) => boolean | Promise<boolean>
  /**
   * Decides a request after the origin check: return undefined to accept, a status (non-2xx
   * refuses), or `{ status, headers, protocol }` to add response headers or choose the
   * subprotocol (one the client offered). Failures are handled like `checkOrigin`'s. A 404
   * ("no WebTransport here") goes to a `webtransport-h3` client as 405, as its draft asks.
   */
  onRequest?: (request: WebTransportRequest) => RequestDecision | Promise<RequestDecision>
  /**
   * Answers regular HTTP/3 requests (everything that is not a WebTransport CONNECT), as
   * Bun.serve, Deno.serve and Hono do (`fetch: app.fetch`). `request` is a WHATWG Request whose
   * body streams from QUIC with backpressure and whose `signal` aborts when the client resets the
   * request or goes away; the returned Response streams back (no body for HEAD, 204, 304; a body
   * that breaks its own content-length resets the stream). A handler that throws, rejects or
   * returns something else gets 500, one that takes longer than `callbackTimeout` 503, each with
   * 'requestError'. Without `fetch`, regular requests get 404.
   */
  fetch?: (request: Request, info: FetchInfo) => Response | Promise<Response>
  /** Largest regular request body, in bytes; a larger one gets 413. Default 64 MiB. */
  maxRequestBodySize?: number
  /** Subprotocols in the server's preference order, matched against the client's WT-Available-Protocols. */
  protocols?: string[]
  /** Milliseconds a `checkOrigin` or `onRequest` may take. Default 10000. */
  callbackTimeout?: number
  /** Sessions open at once; more get 429. Default 10000. */
  maxSessions?: number
  /** Concurrent client-opened streams per connection: one number for both directions, or each. Default 100. */
  maxIncomingStreams?: number | { bidi?: number; uni?: number }
  /** Milliseconds without traffic before a connection is dropped. Default 30000. */
  idleTimeout?: number
  /** Milliseconds between keep-alive pings; 0 (default) sends none. */
  keepAliveInterval?: number
  /**
   * Datagram queues. `incomingHighWaterMark`: received datagrams queued per session before the
   * oldest is dropped (counted in stats as droppedIncoming). `outgoingHighWaterMark`: datagrams
   * (of up to 1500 bytes) QUIC holds for sending before it drops the oldest. Default 1024 each.
   */
  datagrams?: { incomingHighWaterMark?: number; outgoingHighWaterMark?: number }
  /**
   * Write TLS secrets to the file named by the SSLKEYLOGFILE environment variable, for packet
   * captures. Default false: no key material is ever written unless this is set.
   */
  keyLog?: boolean
  /** Congestion controller. Default 'cubic'. */
  congestionControl?: 'cubic' | 'bbr' | 'newreno'
  /**
   * QUIC endpoints sharing the port, 1 to 64, so that several threads receive and decrypt at
   * once. Linux only (SO_REUSEPORT and a classic-BPF program that steers every packet to the
   * endpoint its connection ID names, so a client whose port changes stays on its endpoint);
   * elsewhere always 1. Default: the native runtime's threads (the cores but one).
   */
  workers?: number
  /**
   * 1 to 14 bytes (or their hex) written into every connection ID after its first octet, the
   * QUIC-LB plaintext layout that balancers routing by connection ID read (AWS NLB's QUIC
   * listeners: the target's 8-byte QuicServerId). Packets whose ID lacks it are dropped, not
   * answered with a stateless reset. Default: none.
   */
  serverId?: Uint8Array | string
  /**
   * At least 32 bytes (a string counts its UTF-8 bytes) from which the stateless-reset key and
   * the address-token key are derived. Give every instance of a fleet the same secret and keep
   * it across restarts: then any of them, or a restarted one, ends a connection it does not know
   * at once with a stateless reset the client accepts, instead of leaving it to time out.
   * Default: random keys known to this server only.
   */
  secret?: Uint8Array | string
  /** Milliseconds `close()` lets sessions finish before the connections are closed. Default 2000. */
  closeGrace?: number
  /**
   * WebTransport flow control (draft-ietf-webtrans-http3-14 to -16), per session, for clients
   * that use it (Safari 26.4+, webtransport-go); Chromium and Firefox speak an older draft
   * without it. The limits go out in SETTINGS and are topped up by capsules as the application
   * reads and finishes streams, so a client is held back only by an application that stops
   * reading. They bound what one session can make the server hold: at most `maxData` bytes of
   * stream data the application has not read, and at most `maxStreamsBidi` / `maxStreamsUni`
   * streams it has not finished with. A client past them loses its session
   * (WT_FLOW_CONTROL_ERROR). The client's own limits hold back `createBidirectionalStream()`,
   * `createUnidirectionalStream()` and writes in the same way.
   */
  flowControl?: {
    /** Bytes. Default 16 MiB (the QUIC connection's receive window). */
    maxData?: number
    /** Default 100. */
    maxStreamsBidi?: number
    /** Default 100. */
    maxStreamsUni?: number
  }
}

/** What `fetch` gets beside the Request. */
export interface FetchInfo {
  remoteAddress: string
  remotePort: number
}

/** Arguments of `session.close()` and `server.close()`. */
export interface CloseInfo {
  /** u32 application code. Default 0. */
  closeCode?: number
  /** UTF-8, at most 1024 bytes. Default ''. */
  reason?: string
}

/** How a session closed. */
export interface SessionCloseInfo {
  closeCode: number
  reason: string
}

/**
 * W3C WebTransportReceiveStream: the bytes the client sends on a stream. A ReadableStream; it
 * reads nothing ahead (high-water mark 0). `pipeTo` into a {@link WebTransportSendStream} with
 * default options runs natively, without JS per chunk, with `pipeTo`'s results: the destination
 * finished; or, on a failure, the other side reset or stopped with the failure's code and the
 * promise rejected with it. With any option set, or into another stream, it is Node's `pipeTo`.
 * When the whole stream had already arrived, the native pipe ends within the call and `pipeTo`
 * returns with neither stream locked.
 */
export class WebTransportReceiveStream extends ReadableStream<Uint8Array> {
  private constructor()
}

/** W3C WebTransportSendStream: the bytes the server sends on a stream. A WritableStream. */
export class WebTransportSendStream extends WritableStream<Uint8Array> {
  private constructor()
  /**
   * W3C sendOrder: among the session's streams with data waiting to be sent, a higher order is
   * sent first; equal ones share the connection. Any integer, default 0; natively it becomes
   * QUIC's 32-bit stream priority, values beyond the i32 range saturating at its ends (the value
   * as set is what reads back). Setting anything but an integer throws a TypeError
   * (WT_ERR_INVALID_OPTION). A change applies from the next time QUIC sends from the stream: a
   * lowered order at once, while a raised one may wait until the streams already ahead of it
   * have sent what they had queued (quinn re-sorts a stream only when it sends from it).
   */
  sendOrder: number
}

/** W3C WebTransportSendStreamOptions (`sendGroup` and `waitUntilAvailable` are not supported). */
export interface WebTransportSendStreamOptions {
  /** The new stream's {@link WebTransportSendStream.sendOrder}; an integer, default 0. */
  sendOrder?: number
}

export interface BidirectionalStream {
  readonly readable: WebTransportReceiveStream
  readonly writable: WebTransportSendStream
}

export interface DatagramDuplexStream {
  readonly readable: ReadableStream<Uint8Array>
  readonly writable: WritableStream<Uint8Array>
  /** Largest payload that fits one packet now; 0 when the client takes no datagrams. */
  readonly maxDatagramSize: number
}

export interface SessionStats {
  /** Smoothed round-trip time, milliseconds. */
  rtt: number
  /** The same as `rtt`, under its W3C WebTransportConnectionStats name. */
  smoothedRtt: number
  /** Smallest round-trip time seen, milliseconds. */
  minRtt: number
  /** Congestion window, bytes. */
  congestionWindow: number
  bytesSent: number
  bytesReceived: number
  packetsSent: number
  packetsReceived: number
  packetsLost: number
  datagrams: { sent: number; received: number; droppedIncoming: number }
  /** WebTransport flow control's limits and their use; null when the client does not use it. */
  flowControl: FlowControlStats | null
}

/** `local*`: the limits this server gives the client; `remote*`: the client's limits on us. */
export interface FlowControlStats {
  /** Stream bytes the client may send in all (our current WT_MAX_DATA). */
  localMaxData: number
  /** Client stream bytes the application has read. */
  dataReceived: number
  /** Stream bytes we may send in all (the client's WT_MAX_DATA). */
  remoteMaxData: number
  dataSent: number
  localMaxStreamsBidi: number
  localMaxStreamsUni: number
  remoteMaxStreamsBidi: number
  remoteMaxStreamsUni: number
  streamsOpenedByPeerBidi: number
  streamsOpenedByPeerUni: number
  streamsOpenedBidi: number
  streamsOpenedUni: number
  /** Times a write or a stream opening waited for the client's credit. */
  blocked: number
  /** WT_MAX_DATA and WT_MAX_STREAMS capsules sent. */
  creditCapsulesSent: number
}

/**
 * The W3C WebTransport members a session has whichever end opened it: the server's
 * {@link WebTransportSession} and the client's {@link WebTransport} (the same JS and native
 * objects underneath).
 */
export interface WebTransportSessionMembers {
  /** Negotiated subprotocol, '' when none. */
  readonly protocol: string
  readonly ready: Promise<void>
  /** Resolves when either side closes (with the code and reason); rejects when the session is lost. */
  readonly closed: Promise<SessionCloseInfo>
  /**
   * Resolves when the session starts draining (DRAIN_WEBTRANSPORT_SESSION sent or received, or
   * the server closing), or when the session ends.
   */
  readonly draining: Promise<void>
  /** The peer's bidirectional streams. */
  readonly incomingBidirectionalStreams: ReadableStream<BidirectionalStream>
  /** The peer's unidirectional streams. */
  readonly incomingUnidirectionalStreams: ReadableStream<WebTransportReceiveStream>
  readonly datagrams: DatagramDuplexStream
  /** Opens a bidirectional stream to the peer; a bad `sendOrder` rejects with a TypeError (WT_ERR_INVALID_OPTION). */
  createBidirectionalStream(options?: WebTransportSendStreamOptions): Promise<BidirectionalStream>
  /** Opens a unidirectional stream to the peer; a bad `sendOrder` rejects with a TypeError (WT_ERR_INVALID_OPTION). */
  createUnidirectionalStream(options?: WebTransportSendStreamOptions): Promise<WebTransportSendStream>
  /**
   * W3C exportKeyingMaterial: `length` bytes of keying material from the connection's TLS
   * exporter for this session, as draft-ietf-webtrans-http3 §4.8 defines it (TLS label
   * "EXPORTER-WebTransport", context: this session's id, `label` and `context`), so the peer
   * derives the same bytes from the same arguments and no other session gets them.
   * @param label at most 255 bytes (an ArrayBuffer or any view of one).
   * @param context at most 255 bytes; omitted means empty, as the draft says.
   * @param length bytes wanted, 1 to 4096; default 32.
   * Rejects with RangeError or TypeError (WT_ERR_INVALID_OPTION) for bad arguments, and with
   * WT_ERR_SESSION_CLOSED once the session has ended.
   */
  exportKeyingMaterial(label: ArrayBuffer | ArrayBufferView, context?: ArrayBuffer | ArrayBufferView, length?: number): Promise<Uint8Array>
  /** Sends CLOSE_WEBTRANSPORT_SESSION and ends the session's streams. Idempotent. */
  close(closeInfo?: CloseInfo): void
  getStats(): Promise<SessionStats>
}

export interface WebTransportSession extends WebTransportSessionMembers {}
/** The server's side of a WebTransport session, in the W3C WebTransport shape. */
export class WebTransportSession {
  private constructor()
  readonly request: WebTransportRequest
  /**
   * Asks the client to end this session soon (DRAIN_WEBTRANSPORT_SESSION; a browser's
   * `wt.draining` resolves) and resolves this side's `draining`. Streams and datagrams keep
   * working until one side closes. Idempotent; does nothing once the session has ended.
   */
  drain(): void
}

/** W3C WebTransportHash: a certificate's hash for `serverCertificateHashes`. */
export interface WebTransportHash {
  /** Only 'sha-256' hashes count; others are ignored, as in browsers. */
  algorithm: string
  value: ArrayBuffer | ArrayBufferView
}

/**
 * Options of {@link WebTransport}: the W3C WebTransportOptions, plus `ca`, `localAddress` and
 * `localPort` for Node. A bad option throws from the constructor (TypeError or RangeError with
 * code WT_ERR_INVALID_OPTION, or a SyntaxError DOMException for `protocols`).
 */
export interface WebTransportOptions {
  /**
   * Trust exactly the certificates with these SHA-256 hashes instead of the roots, under the
   * browsers' rules: the certificate must be ECDSA P-256, valid for at most 14 days, and valid
   * now. An empty list means the roots.
   */
  serverCertificateHashes?: WebTransportHash[]
  /** Subprotocols offered (WT-Available-Protocols), in preference order: unique, non-empty, printable ASCII. */
  protocols?: string[]
  /** Extra request headers (W3C 2026); connection-specific ones are refused. `origin` may be set here (Node has no page origin). */
  headers?: Record<string, string> | [string, string][] | Headers
  /** A hint: 'default' and 'throughput' use CUBIC, 'low-latency' uses BBR. */
  congestionControl?: 'default' | 'throughput' | 'low-latency'
  /** Accepted for compatibility; every session has a connection of its own (never pooled). */
  allowPooling?: boolean
  /** Accepted for compatibility; sessions are always HTTP/3 (with datagrams). */
  requireUnreliable?: boolean
  /** Node only: further roots to trust (PEM text or Buffers), beside Node's and the system's. */
  ca?: string | Uint8Array | (string | Uint8Array)[]
  /** Node only: the local IP address to send from (default: any, IPv6 and IPv4). */
  localAddress?: string
  /** Node only: the local UDP port, with `localAddress` (default: any). */
  localPort?: number
}

export interface WebTransport extends WebTransportSessionMembers {}
/**
 * W3C WebTransport, for Node: a session this process opens to a WebTransport server, with the
 * same streams as the server's sessions. Each session has its own QUIC connection; all share one
 * UDP socket per local address, closed with the last session, so the process can exit.
 * Certificates are checked against Node's roots and the system's (plus `ca`), unless
 * `serverCertificateHashes` pins them.
 */
export class WebTransport {
  /** @throws SyntaxError (DOMException) for a URL that is not https: or has a fragment. */
  constructor(url: string | URL, options?: WebTransportOptions)
  /** Always false: no HTTP/2 fallback. */
  static readonly supportsReliableOnly: boolean
  /**
   * Resolves once the server accepted the session. Rejects with a WebTransportError (source
   * 'session') saying why it did not: WT_ERR_HANDSHAKE_FAILED (unreachable, or a certificate not
   * trusted: the message says which rule failed), WT_ERR_SESSION_REFUSED (with `status`), or
   * `close()` before it was ready. Never an unhandled rejection when nobody listens; `closed`
   * rejects with the same error. Stream openings wait for it; `protocol` is '' and
   * `datagrams.maxDatagramSize` 0 until then.
   */
  readonly ready: Promise<void>
  /** 'pending' until `ready`, then 'supports-unreliable'. */
  readonly reliability: 'pending' | 'reliable-only' | 'supports-unreliable'
  readonly congestionControl: 'default' | 'throughput' | 'low-latency'
}

export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

export interface ServerEvents {
  listening: []
  session: [session: WebTransportSession]
  /** A session request or (from `fetch`) a regular request that failed in the application's callback. */
  requestError: [error: WebTransportServerError, request: WebTransportRequest | Request]
  /**
   * A contained internal fault (code WT_ERR_INTERNAL): a bug closed one connection with
   * H3_INTERNAL_ERROR and the server went on. Without a listener it becomes a process warning.
   */
  fault: [error: WebTransportServerError]
  error: [error: WebTransportServerError]
  close: []
}

export interface ServerCounters {
  /** QUIC connections open. */
  connections: number
  /** WebTransport sessions open. */
  sessions: number
  /** Internal faults contained since start (each closed one connection; see the 'fault' event). */
  faults: number
  /** Native tasks running for this server. */
  tasks: number
  /** Stream sides alive in the process (send and receive counted apart). */
  streamHalves: number
  /** Native request objects JS still holds, process-wide (freed after GC). */
  nativeRequests: number
  /** Native session objects JS still holds, process-wide (freed after GC). */
  nativeSessions: number
  /** Native stream objects JS still holds, process-wide (freed after GC). */
  nativeStreams: number
  /** Each endpoint (see `workers`), in the order of its socket. */
  workers: WorkerCounters[]
}

/** What one endpoint has seen since the server started. */
export interface WorkerCounters {
  /** UDP datagrams received. */
  packets: number
  /** Short-header datagrams whose connection ID names another endpoint; 0 while steering works. */
  misrouted: number
  /** Connections accepted. */
  connections: number
}

/** An HTTP/3 WebTransport server. */
export class Server extends EventEmitter<ServerEvents> {
  constructor(options: ServerOptions)
  /** Resolves when listening; rejects with the bind error (code WT_ERR_BIND). */
  readonly ready: Promise<void>
  readonly listening: boolean
  /** The bound address; null before listening and after close. */
  address(): AddressInfo | null
  /** Live counts for tests and operators; all zeros once closed. */
  counters(): ServerCounters
  /**
   * The Alt-Svc header value announcing this server's HTTP/3 (`h3=":4433"; ma=86400`), for an
   * HTTPS (TCP) server of the same host to send so browsers switch to HTTP/3; null when not
   * listening.
   */
  readonly altSvc: string | null
  /** Closes every session with the code and reason and stops the server; idempotent. */
  close(closeInfo?: CloseInfo): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

export interface CertificateOptions {
  /** DNS names or IP addresses. Default ['localhost', '127.0.0.1', '::1']. */
  hostnames?: string[]
  /** Validity in days, 1 to 14 (browsers refuse longer for pinned certificates). Default 14. */
  days?: number
}

export interface GeneratedCertificate {
  /** PEM certificate. */
  cert: string
  /** PEM private key (PKCS#8). */
  key: string
  /** Pass to a browser: `new WebTransport(url, { serverCertificateHashes: [hash] })`. */
  hash: { algorithm: 'sha-256'; value: Uint8Array }
}

/** A self-signed ECDSA P-256 certificate for development and tests. */
export function generateCertificate(options?: CertificateOptions): GeneratedCertificate
