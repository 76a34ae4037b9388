// Node's `eventsource` package (the EventSource of Node programs) against a running sse-server, for
// server/tests/clients.rs. Usage: node node-eventsource.mjs URL TOPIC N1 N2
//
// Subscribes to TOPIC, prints READY on open, GOT N1 after N1 events (the driver then restarts the
// server, which closes the stream), and waits for N1 + N2 events after the library reconnected on
// its own (after the server's `retry`, with Last-Event-ID). Line protocol: see lib.mjs.

import { EventSource } from 'eventsource';
import { deadline, emit, fatal, until } from './lib.mjs';

const [url, topic, n1, n2] = process.argv.slice(2);
const WAIT_MS = 30_000;
deadline(60_000);

const events = [];
const log = [];
const requests = [];
const es = new EventSource(`${url}/events?topic=${encodeURIComponent(topic)}`, {
  // Wraps fetch only to record the headers of every (re)connection the library makes.
  fetch: (input, init) => {
    requests.push({ url: String(input), lastEventId: init?.headers?.['Last-Event-ID'] ?? null });
    return fetch(input, init);
  },
});
// As in a browser: unnamed events reach onmessage, named events their own listener only.
es.onmessage = (e) => events.push(['message', e.data, e.lastEventId]);
for (const name of ['tick', 'other']) {
  es.addEventListener(name, (e) => events.push([name, e.data, e.lastEventId]));
}
es.onopen = () => log.push({ what: 'open', t: performance.now(), events: events.length });
es.onerror = (e) => log.push({ what: 'error', t: performance.now(), message: e?.message ?? null, events: events.length });

const opens = () => log.filter((l) => l.what === 'open').length;
try {
  await until(() => opens() >= 1, WAIT_MS, 'open');
  emit('READY');
  await until(() => events.length >= Number(n1), WAIT_MS, `${n1} events`);
  emit('GOT', String(events.length));
  await until(() => events.length >= Number(n1) + Number(n2) && opens() >= 2, WAIT_MS, 'events after the reconnect');
} catch (err) {
  for (const e of events) emit('EVENT', e);
  for (const l of log) emit('LOG', l);
  fatal(err);
} finally {
  es.close();
}
for (const e of events) emit('EVENT', e);
for (const r of requests) emit('REQUEST', r);
for (const l of log) emit('LOG', l);
emit('DONE');
process.exit(0);
