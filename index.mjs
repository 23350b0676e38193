import cjs from './index.js'

export const { Server, WebTransportSession, WebTransportError, generateCertificate } = cjs
export default cjs
