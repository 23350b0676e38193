'use strict'

// The JS end of a server's hub (src/binding/hub.rs): every native wait of the server's sessions
// and streams (a session's end, its next streams or datagrams, a native pipe) settles through
// one persistent native callback, in batches, instead of one awaited native call each.

const { fromNative } = require('./errors')

class ReadyHub {
  #waits = new Map()
  #next = 0

  /** The native callback: every wait finished since the last call. Never throws. */
  deliver(events) {
    for (const event of events) {
      const resolve = this.#waits.get(event.id)
      if (resolve === undefined) continue
      this.#waits.delete(event.id)
      resolve(event)
    }
  }

  /**
   * Starts a native wait: `begin(id)` hands `id` to the native side and returns the event at
   * once when the wait is already over. Returns that event, or else a promise of the event
   * `{ id, side?, message? }` once the wait settles. Throws (as a library error) if `begin` does.
   */
  begin(begin) {
    let id
    do id = this.#next = (this.#next + 1) >>> 0
    while (this.#waits.has(id))
    let now
    try {
      now = begin(id)
    } catch (error) {
      throw fromNative(error)
    }
    if (now !== null && now !== undefined) return now
    // Events arrive through the native callback, never during `begin`: registering now is in time.
    return new Promise((resolve) => this.#waits.set(id, resolve))
  }

  /** `begin`, always as a promise (which rejects if `begin` throws). */
  wait(begin) {
    try {
      const now = this.begin(begin)
      return now instanceof Promise ? now : Promise.resolve(now)
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

module.exports = { ReadyHub }
