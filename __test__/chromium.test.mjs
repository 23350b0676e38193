// Chromium (headless, through playwright-core) against the echo server: the real browser WebTransport
// client talking to webtransport-napi. Needs /usr/bin/chromium (or CHROMIUM_PATH).
//
// The scenarios are support/echo-scenarios.mjs's, shared with firefox.test.mjs; this profile says where
// Chromium 156 departs from the W3C text, and the scenarios assert exactly that.
import { test } from 'node:test'
import { startBrowserEnv } from './support/browser.mjs'
import { echoSuite } from './support/echo-scenarios.mjs'

const CHROMIUM = {
  name: 'chromium',
  userAgent: /HeadlessChrome\//,
  // Chromium queues incoming datagrams generously: bursts of 10, 10 ms apart, without waiting for echoes.
  datagrams: { burst: 10, awaitEchoes: false },
  // A write in flight when the server's STOP_SENDING lands rejects with a NetworkError without the code
  // (chromium-protocol.test.mjs meets it too); a write after it gets the WebTransportError with the code.
  stopSendingWhileWriting: 'NetworkError',
  // wt.draining is not implemented: the page sees the drain only as `closed` with the code.
  draining: false,
}

const suite = echoSuite(CHROMIUM, startBrowserEnv)
for (const scenario of suite.scenarios) test(scenario.name, { timeout: scenario.timeout }, (t) => suite.run(scenario, t))
