'use strict'

// Loads the addon that `npm install` built from source (scripts/build.js).
const path = require('node:path')

const file = path.join(__dirname, '..', 'build', 'webtransport_napi.node')
try {
  module.exports = require(file)
} catch (error) {
  const wrapped = new Error(
    `webtransport-napi: the native addon is missing or cannot load (${file}). It is built from source at ` +
      'install time: run `npm rebuild webtransport-napi` (or `npm run build` in a checkout) and check that cargo is on PATH.',
    { cause: error },
  )
  wrapped.code = 'WT_ERR_ADDON_LOAD'
  throw wrapped
}
