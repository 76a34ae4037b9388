"""The Flask comparison peer for the sse-fanout benchmarks.

Written as the Flask SSE article most answers point to ("Server-sent events in Flask without
extra dependencies", Max Halford) and the tutorials copied from it: a ``MessageAnnouncer`` keeps
one ``queue.Queue(maxsize=5)`` per listener, and each ``GET /events`` response is a streaming
generator that yields what arrives on its queue. Deployed the way Flask's own gunicorn
deployment page shows for asynchronous work: gunicorn with a gevent worker (see run.sh).

    GET  /events    the event stream (``?topic=`` is accepted and ignored: one stream)
    POST /publish   the raw body becomes one event's data; replies 200
    GET  /healthz   "ok"

Added to the article for the benchmark: ``POST /publish`` takes the raw body, a first comment so
the response starts at once, and a keep-alive comment after 15 s without events.

A slow listener is dropped from the announcer: when ``put_nowait`` finds its queue full (5
events waiting), the article's ``announce`` deletes it from the list. Its connection stays open
and gets keep-alive comments only; every later event is lost to it. Nothing blocks the
publisher.
"""

import queue

import flask

HEARTBEAT_S = 15

app = flask.Flask(__name__)


class MessageAnnouncer:
    """The article's announcer: a list of listener queues."""

    def __init__(self):
        self.listeners = []

    def listen(self):
        q = queue.Queue(maxsize=5)
        self.listeners.append(q)
        return q

    def announce(self, msg):
        # Backwards, so deleting a listener does not skip the next one.
        for i in reversed(range(len(self.listeners))):
            try:
                self.listeners[i].put_nowait(msg)
            except queue.Full:
                del self.listeners[i]

    def forget(self, q):
        try:
            self.listeners.remove(q)
        except ValueError:
            pass  # already dropped as too slow


announcer = MessageAnnouncer()


def format_sse(data):
    """One event: a ``data:`` line per line of the body."""
    lines = "".join(f"data: {line.rstrip(chr(13))}\n" for line in data.split("\n"))
    return lines + "\n"


@app.get("/events")
def events():
    def stream():
        messages = announcer.listen()
        try:
            yield ": ok\n\n"
            while True:
                try:
                    yield messages.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield ": keep-alive\n\n"
        finally:
            # gunicorn closes the generator when a write to the client fails.
            announcer.forget(messages)

    return flask.Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@app.post("/publish")
def publish():
    announcer.announce(format_sse(flask.request.get_data(as_text=True)))
    return "ok\n", 200


@app.get("/healthz")
def healthz():
    return "ok\n"
