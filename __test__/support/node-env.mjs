// A "page" in this Node process, of browser.mjs's env shape: the browser suites' page functions
// run here unchanged against the package's own WebTransport client, with browser.mjs's `T`
// helpers, `WebTransportError`, `location` and `navigator` as globals, as they are in a page.
// Like a browser, the client sends the page's Origin: http://127.0.0.1:<port> for 'same', and
// http://localhost:<port> for 'cross' (the echo server listens on 127.0.0.1).
import { WebTransport, WebTransportError } from '../../index.js'
import { PAGE_HELPERS, withTimeout } from './browser.mjs'

const PAGE_PORT = 8080

export async function startNodeEnv() {
  const window = {}
  new Function('window', PAGE_HELPERS)(window)
  globalThis.T = window.T
  globalThis.WebTransportError = WebTransportError
  return {
    async run(origin, fn, arg, { timeout = 20_000, label = fn.name || 'page function' } = {}) {
      const pageOrigin = `http://${origin === 'cross' ? 'localhost' : '127.0.0.1'}:${PAGE_PORT}`
      globalThis.location = { origin: pageOrigin }
      globalThis.WebTransport = class extends WebTransport {
        constructor(url, options = {}) {
          super(url, { ...options, headers: { origin: pageOrigin, ...options.headers } })
        }
      }
      try {
        return await withTimeout(fn(arg), timeout, label)
      } finally {
        delete globalThis.WebTransport
        delete globalThis.location
      }
    },
    async close() {
      delete globalThis.T
      delete globalThis.WebTransportError
    },
  }
}
