// The Node.js comparison peer for the sse-fanout benchmarks: node:http with a Set of open
// responses per topic, res.write() per event -- the pattern Node SSE tutorials teach.
//
// Usage: node server.js [PORT [THREADS]]   (or env PORT, THREADS; default port 8083)
//
//   GET  /events?topic=T   Server-Sent Events stream of topic T (default "default")
//   POST /publish?topic=T  the raw body becomes one event's data; replies 200
//
// One process on purpose: node:cluster workers do not share memory, so fanning one publish out
// to subscribers held by other workers would need a broker (Redis pub/sub, IPC), which is not
// the usual pattern. THREADS is accepted for a uniform command line and sets the libuv pool
// size only; the event loop, where all the work happens, is one thread.
'use strict';

const http = require('node:http');

const port = Number(process.argv[2] || process.env.PORT || 8083);
const threads = Number(process.argv[3] || process.env.THREADS || 1);

// Streams whose socket buffer is over this many bytes are dropped as too slow, as the other
// peers do with their bounded queues.
const MAX_PENDING = 1 << 20;
const HEARTBEAT_MS = 15000;

/** @type {Map<string, Set<http.ServerResponse>>} */
const topics = new Map();

function topicOf(url) {
  return url.searchParams.get('topic') || 'default';
}

function encode(body) {
  let frame = '';
  for (const line of body.split('\n')) frame += 'data: ' + line.replace(/\r$/, '') + '\n';
  return frame + '\n';
}

function subscribe(req, res, topic) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  res.write(': ok\n\n');
  let set = topics.get(topic);
  if (!set) topics.set(topic, (set = new Set()));
  set.add(res);
  res.on('close', () => {
    set.delete(res);
    if (set.size === 0 && topics.get(topic) === set) topics.delete(topic);
  });
}

function publish(req, res, topic) {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_PENDING) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    // Encode once to a Buffer so each write shares the same bytes.
    const frame = Buffer.from(encode(Buffer.concat(chunks).toString('utf8')));
    let delivered = 0;
    const set = topics.get(topic);
    if (set) {
      for (const sub of set) {
        if (sub.writableLength > MAX_PENDING) {
          sub.destroy();
          continue;
        }
        sub.write(frame);
        delivered++;
      }
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(delivered + '\n');
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/events' && req.method === 'GET') return subscribe(req, res, topicOf(url));
  if (url.pathname === '/publish' && req.method === 'POST') return publish(req, res, topicOf(url));
  if (url.pathname === '/healthz') return res.end('ok\n');
  res.writeHead(404).end();
});

// Streams never time out; the defaults would cut long-lived subscribers.
server.requestTimeout = 0;
server.headersTimeout = 10000;
server.keepAliveTimeout = 5000;
server.timeout = 0;
server.maxConnections = Infinity;

setInterval(() => {
  for (const set of topics.values()) for (const sub of set) sub.write(': keep-alive\n\n');
}, HEARTBEAT_MS).unref();

server.listen(port, '127.0.0.1', 65535, () => {
  console.error(`node peer: listening on http://127.0.0.1:${port}, pid ${process.pid}, ` +
    `1 event loop (THREADS=${threads} sets UV_THREADPOOL_SIZE only)`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
