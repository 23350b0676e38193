// Firefox ESR (headless, through puppeteer-core over WebDriver BiDi) against the echo server: the second real
// browser WebTransport client (neqo) talking to webtransport-napi. Needs /usr/bin/firefox-esr (or FIREFOX_PATH).
//
// The scenarios are support/echo-scenarios.mjs's, shared with chromium.test.mjs; this profile says where
// Firefox 153 ESR departs from the W3C text (and from Chromium), and the scenarios assert exactly that.
// Like Chromium, it takes only the dictionary form `new WebTransportError({ streamErrorCode })` (a scenario
// checks it in both).
import { test } from 'node:test'
import { startFirefoxEnv } from './support/firefox.mjs'
import { echoSuite } from './support/echo-scenarios.mjs'

const FIREFOX = {
  name: 'firefox',
  userAgent: /Firefox\//,
  // Firefox queues only about 10 incoming datagrams and drops the rest: bursts of 5, each waiting for its
  // echoes before the next.
  datagrams: { burst: 5, awaitEchoes: true },
  // new WebTransportError(message, init) throws a TypeError: only the dictionary form is taken.
  errorMessageForm: false,
  // A RESET_STREAM from the server errors the page's readable with a plain TypeError, without
  // `streamErrorCode` (Chromium gives a WebTransportError with the code).
  resetTowardsPage: { name: 'TypeError', message: 'Error in input stream' },
  // readable.cancel(new WebTransportError({ streamErrorCode })) sends no STOP_SENDING: Firefox keeps reading
  // and discarding, so the server's writes keep succeeding.
  cancelSendsStopSending: false,
  // A write in flight when the server's STOP_SENDING lands rejects with AbortError 'error writing data',
  // without the code; a write after it gets the WebTransportError with the code.
  stopSendingWhileWriting: 'AbortError',
  // wt.draining is not implemented (undefined).
  draining: false,
}

const suite = echoSuite(FIREFOX, startFirefoxEnv)
for (const scenario of suite.scenarios) test(scenario.name, { timeout: scenario.timeout }, (t) => suite.run(scenario, t))
