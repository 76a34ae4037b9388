//! Request framing under abuse (issue 10, defects 6 and 7): the smuggling shapes, each refused
//! with its exact status and the connection closed, and bodies refused with `413` from what their
//! framing announces, before their bytes are sent.

use crate::util::{self, Conn, SseStream, TestServer, deadline, get, parse_id, publish};

/// A publish of `smuggled` to topic `t`, hidden in the body of each refused request: if the
/// server framed a request differently from a strict parser, this would reach the stream.
const SMUGGLED: &str = "POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
                        Content-Length: 8\r\n\r\nsmuggled";

/// `POST /publish?topic=t` with these header lines (each ending in CRLF), then `body`.
fn publish_with(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n{headers}\r\n{body}"
    )
    .into_bytes()
}

/// Every smuggling shape issue 10 names gets its exact status, `Connection: close`, and the
/// connection closed after it (a request whose framing is unknown leaves nothing to read the
/// next one from); a subscriber of the topic sees only the good events around them, never the
/// publish hidden after each one. Bare LF in the head is refused although RFC 9112 section 2.2
/// lets a server accept it: a proxy in front that does not end lines at LF would see other
/// headers than the server does.
#[test]
fn smuggling_shapes_are_refused() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["t"]);
    stream.read_preamble(deadline());
    let before = publish(addr, "t", "before");

    let chunked = "Transfer-Encoding: chunked\r\n";
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "bare LF after a chunk size",
            publish_with(chunked, &format!("5\nhello\r\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        (
            "bare LF after a chunk extension",
            publish_with(chunked, &format!("5;a=b\nhello\r\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        (
            "bare LF after chunk data",
            publish_with(chunked, &format!("5\r\nhello\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        (
            "bare LF after the last chunk",
            publish_with(chunked, &format!("5\r\nhello\r\n0\n\n{SMUGGLED}")),
            400,
        ),
        (
            "bare LF ending a trailer",
            publish_with(chunked, &format!("5\r\nhello\r\n0\r\nX: y\n\r\n{SMUGGLED}")),
            400,
        ),
        (
            "Transfer-Encoding chunked followed by NBSP",
            publish_with(
                "Transfer-Encoding: chunked\u{a0}\r\n",
                &format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "Content-Length followed by NBSP",
            publish_with("Content-Length: 5\u{a0}\r\n", &format!("hello{SMUGGLED}")),
            400,
        ),
        (
            "Content-Length and Transfer-Encoding",
            publish_with(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "Transfer-Encoding and Content-Length",
            publish_with(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "two equal Content-Lengths",
            publish_with(
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
        ),
        (
            "two different Content-Lengths",
            publish_with(
                "Content-Length: 5\r\nContent-Length: 78\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
        ),
        (
            "Content-Length list",
            publish_with("Content-Length: 5, 5\r\n", &format!("hello{SMUGGLED}")),
            400,
        ),
        (
            "Transfer-Encoding not chunked",
            publish_with("Transfer-Encoding: gzip\r\n", SMUGGLED),
            400,
        ),
        (
            "Transfer-Encoding chunked then another coding",
            publish_with(
                "Transfer-Encoding: chunked, identity\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "Transfer-Encoding chunked twice",
            publish_with(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "Transfer-Encoding empty",
            publish_with("Transfer-Encoding: \r\n", SMUGGLED),
            400,
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "POST /publish?topic=t HTTP/1.0\r\nContent-Type: text/plain\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            400,
        ),
        (
            "another coding before chunked",
            publish_with(
                "Transfer-Encoding: gzip, chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            501,
        ),
        (
            "obs-fold in Transfer-Encoding",
            publish_with(
                "Transfer-Encoding:\r\n chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        (
            "obs-fold in another header",
            publish_with("X-A: b\r\n\tc\r\nContent-Length: 5\r\n", "hello"),
            400,
        ),
        (
            "space before the colon",
            publish_with(
                "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
        ),
        (
            "bare LF ending a header line",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: test\nContent-Type: text/plain\r\n\
              Content-Length: 5\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "bare LF ending the head",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 5\r\n\nhello"
                .to_vec(),
            400,
        ),
        (
            "bare CR inside the head",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: test\rContent-Length: 5\r\n\r\nhello"
                .to_vec(),
            400,
        ),
    ];
    for (what, raw, status) in &cases {
        let mut conn = Conn::connect(addr);
        conn.send(raw);
        let response = conn.read_response(deadline());
        assert_eq!(
            response.status,
            *status,
            "{what}: got {} {:?}",
            response.status,
            response.text()
        );
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(conn.wait_closed(deadline()), "{what}: connection left open");
        assert_eq!(get(addr, "/healthz").status, 200, "after {what}");
    }

    let after = publish(addr, "t", "after");
    assert_eq!(stream.next_event().id, Some(before));
    let event = stream.next_event();
    assert_eq!(
        event.id,
        Some(after),
        "a refused request reached the stream: {:?}",
        String::from_utf8_lossy(&event.raw)
    );
}

/// A well-framed chunked body with extensions, whitespace before them, and trailers, sent
/// byte by byte, is still read exactly.
#[test]
fn strict_chunked_framing_still_reads_valid_bodies() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["t"]);
    stream.read_preamble(deadline());
    let raw = publish_with(
        "Transfer-Encoding: \tChunked \r\n",
        "5 ;a=\"b c\"\r\nhello\r\n01;x\r\n \r\n6\r\nworld!\r\n0\r\nX-Sum: 1\r\n\r\n",
    );
    let mut conn = Conn::connect(addr);
    for byte in &raw {
        conn.send(std::slice::from_ref(byte));
    }
    let response = conn.read_response(deadline());
    assert_eq!(response.status, 200, "{:?}", response.text());
    let event = stream.next_event();
    assert_eq!(event.id, Some(parse_id(&response)));
    assert_eq!(event.data_text(), "hello world!");
}

/// Regression test for issue 10, defect 6 (the limit part): with `max_body` at 1 KiB, a
/// publish announcing one byte more gets `413` at once, with none of the body sent, and so does
/// a chunked publish as soon as a chunk-size line shows the body would cross the limit.
#[test]
fn bodies_over_the_limit_get_413_before_they_are_sent() {
    let server = TestServer::start(sse_server::Config {
        max_body: 1024,
        ..util::config()
    });
    let addr = server.addr;

    let mut conn = Conn::connect(addr);
    conn.send(&publish_with("Content-Length: 1025\r\n", ""));
    let response = conn.read_response(deadline());
    assert_eq!(response.status, 413, "{:?}", response.text());

    let mut conn = Conn::connect(addr);
    conn.send(&publish_with(
        "Transfer-Encoding: chunked\r\n",
        &format!("200\r\n{}\r\n201\r\n", "a".repeat(0x200)),
    ));
    let response = conn.read_response(deadline());
    assert_eq!(response.status, 413, "{:?}", response.text());

    let mut conn = Conn::connect(addr);
    conn.send(&publish_with(
        "Transfer-Encoding: chunked\r\n",
        &format!("200\r\n{}\r\n200\r\n", "a".repeat(0x200)),
    ));
    assert!(conn.stays_silent(std::time::Duration::from_millis(200)));
    conn.send(format!("{}\r\n0\r\n\r\n", "b".repeat(0x200)).as_bytes());
    let response = conn.read_response(deadline());
    assert_eq!(
        response.status,
        200,
        "exactly max_body: {:?}",
        response.text()
    );
}

/// Issue 10, defect 6: a subscribe body (`POST /events`) announcing more than
/// `SUBSCRIBE_BODY_LIMIT` (8 KiB) gets `413` at once, although `max_body` (1 MiB by default)
/// would allow it for a publish.
#[test]
fn subscribe_body_over_its_cap_gets_413_at_once() {
    let server = TestServer::with_defaults();
    let mut conn = Conn::connect(server.addr);
    conn.send(
        b"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 1048576\r\n\r\ntopic=a",
    );
    let response = conn.read_response(deadline());
    assert_eq!(response.status, 413, "{:?}", response.text());
}
