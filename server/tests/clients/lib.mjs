// Shared plumbing of the Node client scripts driven by server/tests/clients.rs.
//
// The line protocol, on stdout (one record a line, a keyword then a payload):
//   READY ...      the client is subscribed; the driver may publish
//   GOT N          N events received so far (the driver waits for it before restarting the server)
//   EVENT [a,b,c]  one received event as a JSON array [listener or type, data, lastEventId]
//   REQUEST {...}  one subscribe request the client made (its Last-Event-ID header, ...)
//   <OTHER> ...    scenario-specific facts, described where they are printed
//   DONE           everything above has been printed
//   FATAL msg      the script could not do its job (the driver fails the test with msg)
// On stdin the driver answers with lines, e.g. `URL http://...`.

import readline from 'node:readline';

/** Prints one protocol record. */
export function emit(keyword, payload) {
  const text = payload === undefined ? '' : ' ' + (typeof payload === 'string' ? payload : JSON.stringify(payload));
  process.stdout.write(keyword + text + '\n');
}

/** Prints FATAL and exits; the driver shows the message. */
export function fatal(message) {
  emit('FATAL', String(message && message.stack ? message.stack : message).replace(/\n/g, ' | '));
  process.exit(2);
}

/**
 * Kills the script if it has not finished in `ms`: a client that waits forever must not hang the
 * test run (the driver has its own deadline too).
 */
export function deadline(ms, cleanup) {
  const timer = setTimeout(async () => {
    emit('FATAL', `script deadline of ${ms} ms passed`);
    try { await cleanup?.(); } catch { /* exiting anyway */ }
    process.exit(3);
  }, ms);
  timer.unref();
}

const stdinLines = [];
const stdinWaiters = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const waiter = stdinWaiters.shift();
  if (waiter) waiter(line); else stdinLines.push(line);
});

/** Resolves with the next line the driver writes to stdin. */
export function nextStdinLine() {
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  return new Promise((resolve) => stdinWaiters.push(resolve));
}

/** Resolves when `predicate()` is true, polling every 20 ms; rejects after `ms`. */
export async function until(predicate, ms, what) {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

process.on('unhandledRejection', (err) => fatal(err));
