'use strict'

const { Server, generateCertificate } = require('./lib/server')
const { WebTransportSession } = require('./lib/session')
const { WebTransportError } = require('./lib/errors')
const { WebTransportReceiveStream, WebTransportSendStream } = require('./lib/streams')

module.exports = {
  Server,
  WebTransportSession,
  WebTransportError,
  WebTransportReceiveStream,
  WebTransportSendStream,
  generateCertificate,
}
