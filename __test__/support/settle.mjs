// How a promise stands after at most `ms`: resolved (with its value), rejected (with its error) or
// still pending, and how long it took to settle; so a test asserts on a hang instead of waiting
// for the runner's timeout.
export function settle(promise, ms = 5000) {
  const started = Date.now()
  return Promise.race([
    promise.then(
      (value) => ({ status: 'resolved', value, ms: Date.now() - started }),
      (error) => ({ status: 'rejected', error, ms: Date.now() - started }),
    ),
    new Promise((resolve) => setTimeout(() => resolve({ status: 'pending' }), ms).unref()),
  ])
}
