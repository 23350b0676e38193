// Our WebTransport client against our server, through the very scenarios the browsers run
// (support/echo-scenarios.mjs): each page function runs unchanged in this Node process against
// `require('webtransport-napi').WebTransport` (support/node-env.mjs). Where the profile below
// differs from W3C's defaults, it says so.
import { test } from 'node:test'
import { echoSuite } from './support/echo-scenarios.mjs'
import { startNodeEnv } from './support/node-env.mjs'

const NODE = {
  name: 'node',
  userAgent: /^Node\.js\//,
  // Incoming datagrams queue natively (1024 per session): bursts need not wait for their echoes.
  datagrams: { burst: 10, awaitEchoes: false },
}

const suite = echoSuite(NODE, startNodeEnv)
for (const scenario of suite.scenarios) test(scenario.name, { timeout: scenario.timeout }, (t) => suite.run(scenario, t))
