'use strict'

const { Server, generateCertificate } = require('./lib/server')
const { WebTransportSession } = require('./lib/session')
const { WebTransport } = require('./lib/client')
const { WebTransportError } = require('./lib/errors')
const { WebTransportReceiveStream, WebTransportSendStream } = require('./lib/streams')

module.exports = {
  Server,
  WebTransportSession,
  WebTransport,
  WebTransportError,
  WebTransportReceiveStream,
  WebTransportSendStream,
  generateCertificate,
}
