'use strict'

const { Server, generateCertificate } = require('./lib/server')
const { WebTransportSession } = require('./lib/session')
const { WebTransportError } = require('./lib/errors')

module.exports = { Server, WebTransportSession, WebTransportError, generateCertificate }
