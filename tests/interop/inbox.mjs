// What a connection's `Receive` handler got, and waiting for more of it:
// shared by the interop scenarios.

// Resolves at the next message or after `ms`, whichever comes first; the
// timer is cleared so that it does not keep the process alive.
function wake(waiters, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Collects the `Receive` callbacks of a connection. `timeoutMs` is how long
// `next` and `until` wait unless told otherwise.
export function inbox(connection, timeoutMs = 5000) {
  const messages = [];
  const waiters = [];
  connection.on("Receive", (message) => {
    messages.push(message);
    for (const waiter of waiters.splice(0)) waiter();
  });
  async function waitFor(done, failure, ms) {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(failure());
      await wake(waiters, left);
    }
  }
  return {
    messages,
    // The first `count` messages, once they are in.
    async next(count = 1, ms = timeoutMs) {
      await waitFor(
        () => messages.length >= count,
        () => `expected ${count} messages, got ${JSON.stringify(messages)}`,
        ms,
      );
      return messages.slice(0, count);
    },
    // Returns once `message` is among the messages.
    async until(message, ms = timeoutMs) {
      await waitFor(
        () => messages.includes(message),
        () => `no ${message} in ${JSON.stringify(messages)}`,
        ms,
      );
    },
  };
}
