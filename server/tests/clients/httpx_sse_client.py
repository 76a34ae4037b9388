"""Python's httpx-sse against a running sse-server, for server/tests/clients.rs.

Usage: python httpx_sse_client.py URL TOPIC N1 N2

Subscribes to TOPIC and prints READY, reads N1 events, disconnects and prints AWAY with the last
event id, waits for GO on stdin (the driver publishes meanwhile), reconnects with that id in
Last-Event-ID, prints READY again, reads N2 more events, then prints every event as
EVENT [type, data, lastEventId] and DONE. The line protocol is described in lib.mjs.
"""

import json
import sys

import httpx
from httpx_sse import connect_sse


def emit(keyword, payload=None):
    if payload is None:
        print(keyword, flush=True)
    elif isinstance(payload, str):
        print(keyword, payload, flush=True)
    else:
        print(keyword, json.dumps(payload, ensure_ascii=False, separators=(",", ":")), flush=True)


def read_events(client, url, topic, count, last_event_id, received):
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with connect_sse(client, "GET", url + "/events", params={"topic": topic}, headers=headers) as source:
        response = source.response
        emit("RESPONSE", {"status": response.status_code,
                          "contentType": response.headers.get("content-type"),
                          "lastEventIdSent": last_event_id})
        source.response.raise_for_status()
        emit("READY")
        got = 0
        for sse in source.iter_sse():
            # The spec dispatches nothing for a block without `data:` lines (the server's opening
            # `retry:` block, heartbeat comments once an id was seen); httpx-sse yields them as
            # events with empty data, so they are skipped here as a browser would. The tests never
            # publish empty data.
            if sse.data == "":
                continue
            received.append([sse.event, sse.data, sse.id])
            got += 1
            if got == count:
                return sse.id
    raise RuntimeError("the stream ended after %d of %d events" % (got, count))


def main():
    url, topic, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    received = []
    try:
        # The read timeout bounds every wait for an event: nothing here may hang the test run.
        with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
            last = read_events(client, url, topic, n1, None, received)
            emit("AWAY", last)
            line = sys.stdin.readline().strip()
            if line != "GO":
                raise RuntimeError("expected GO on stdin, got %r" % line)
            read_events(client, url, topic, n2, last, received)
    except Exception as err:  # reported to the driver, which fails the test with it
        for e in received:
            emit("EVENT", e)
        emit("FATAL", "%s: %s" % (type(err).__name__, err))
        sys.exit(2)
    for e in received:
        emit("EVENT", e)
    emit("DONE")


if __name__ == "__main__":
    main()
