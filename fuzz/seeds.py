#!/usr/bin/env python3
"""Writes the seed corpus under corpus/<target>/ from real traffic in seeds/.

seeds/req0..req8 are the bytes curl 7.88 sent for real requests (captured by a socket that
recorded them); seeds/stream.raw is a real event stream from sse-server (curl -N of
GET /events while four events were published). Each seed is [k][k control bytes][payload], the
layout every target reads (fuzz/src/lib.rs, Input::split): once with no control bytes (one
read), once with control bytes that split the payload into small reads.
"""
import os
import pathlib

here = pathlib.Path(__file__).parent
seeds = here / "seeds"
reqs = [(seeds / f"req{i}").read_bytes() for i in range(9)]
stream = (seeds / "stream.raw").read_bytes()
SPLIT = bytes([3, 1, 5, 200])


def write(target, name, control, payload):
    out = here / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(bytes([len(control)]) + control + payload)


for i, req in enumerate(reqs):
    write("request_head", f"curl-{i}", b"", req)
    write("request_head", f"curl-{i}-prefixes", bytes([17, 128, 250]), req)

# Bodies: control byte 0 = framing and limit (see chunked_body.rs), then read sizes.
chunked = [
    b"13\r\nline one\nline two\n\r\n0\r\n\r\n",  # what curl -T - sends
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"A;name=value\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n",
]
for i, body in enumerate(chunked):
    write("chunked_body", f"chunked-{i}", bytes([4]), body)
    write("chunked_body", f"chunked-{i}-split", bytes([4, 1, 2, 0, 7]), body)
length_body = reqs[1].split(b"\r\n\r\n", 1)[1]
write("chunked_body", "length", bytes([0x84 | 0]), length_body * 2)

# Subscribe bodies: control byte 0 even = form, odd = JSON.
write("subscribe_body", "form-events", bytes([0]), reqs[5].split(b"\r\n\r\n", 1)[1])
write("subscribe_body", "form-publish", bytes([0]), reqs[2].split(b"\r\n\r\n", 1)[1])
write("subscribe_body", "json-events", bytes([1]), reqs[4].split(b"\r\n\r\n", 1)[1])
write("subscribe_body", "json-escapes", bytes([1]),
      br'{"topic": "a\u00fcb", "topics": ["x\"y", "\\", "\n"], "lastEventId": ""}')

# Events: topic, then event type and data pairs, separated by U+0001.
events = [
    b"news\x01\x01hello",
    b"chat\x01message\x01multi\nline\r\ndata\rwith CR",
    "news\x01update\x01{\"price\": 1.5, \"\u00fcn\u00ef\": \"ok\"}\x01\x01".encode(),
    b"t\x01\x01\n\n\x01x\x01 lead\r\n",
]
for i, payload in enumerate(events):
    write("event_roundtrip", f"events-{i}", bytes([i]), payload)
    write("event_roundtrip", f"events-{i}-split", bytes([5, 1, 2, 3, 200]), payload)

write("stream_parser", "server-stream", b"", stream)
write("stream_parser", "server-stream-split", bytes([1, 2, 3, 0, 5, 250]), stream)
write("stream_parser", "bom-crlf", b"", b"\xef\xbb\xbfid: 1\r\nevent: a\r\ndata: x\r\r\n:c\nretry: 10\n\n")
