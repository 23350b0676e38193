import cjs from './index.js'

export const {
  Server,
  WebTransportSession,
  WebTransportError,
  WebTransportReceiveStream,
  WebTransportSendStream,
  generateCertificate,
} = cjs
export default cjs
