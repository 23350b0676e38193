import cjs from './index.js'

export const {
  Server,
  WebTransportSession,
  WebTransport,
  WebTransportError,
  WebTransportReceiveStream,
  WebTransportSendStream,
  generateCertificate,
} = cjs
export default cjs
