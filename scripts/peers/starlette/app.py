"""The sse-starlette comparison peer for the sse-fanout benchmarks.

Written as sse-starlette's README shows: a Starlette route returns an ``EventSourceResponse``
over an async generator, served by uvicorn. The broadcast is the usual asyncio one: one
``asyncio.Queue`` per open stream in a set, and ``POST /publish`` puts the event in every queue.

    GET  /events    the event stream (``?topic=`` is accepted and ignored: one stream)
    POST /publish   the raw body becomes one event's data; replies 200
    GET  /healthz   "ok"

Keep-alive is sse-starlette's own ping comment, every 15 s by default; a first comment goes out
when the stream opens.

A slow client is buffered for without bound: its queue is unbounded (``asyncio.Queue()``), and
sse-starlette has no send timeout by default (``send_timeout=None``), so while uvicorn waits for
the client's socket to drain, every event published meanwhile waits in that client's queue.
Neither the publisher nor the other clients wait for it.
"""

import asyncio

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

# One queue per open stream.
subscribers: set[asyncio.Queue] = set()


async def events(request: Request):
    async def stream():
        # Registered when the stream starts, so that the finally below always runs for it.
        queue: asyncio.Queue = asyncio.Queue()
        subscribers.add(queue)
        try:
            yield ServerSentEvent(comment="ok")
            while True:
                yield {"data": await queue.get()}
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(stream())


async def publish(request: Request):
    data = (await request.body()).decode()
    for queue in subscribers:
        queue.put_nowait(data)
    return PlainTextResponse("ok\n")


async def healthz(request: Request):
    return PlainTextResponse("ok\n")


app = Starlette(
    routes=[
        Route("/events", events),
        Route("/publish", publish, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
