//! Limits as a client meets them: `--max-connections` bounds event streams, and a bounded
//! headroom of sockets beyond it keeps short requests (publish, health, metrics) served at the
//! cap; a body over its limit is refused naming the limit and the flag.

use std::time::Duration;

use crate::util::{
    self, Conn, Response, SseStream, TIMEOUT, TestServer, deadline, get, publish, wait_until,
};

/// Connections beyond `--max-connections` the server keeps for short requests (the documented
/// `short_request_headroom`).
const HEADROOM: usize = 64;

/// A `503` with a numeric `Retry-After` and a reason naming `what`.
fn assert_unavailable(response: &Response, what: &str, reason: &str) {
    assert_eq!(response.status, 503, "{what}: {:?}", response.text());
    let retry_after = response.header("retry-after").expect("Retry-After");
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "{what}: Retry-After {retry_after:?}"
    );
    assert!(
        response.text().contains(reason),
        "{what}: {:?}",
        response.text()
    );
}

/// Opens `count` streams on topic `full`, each past its preamble.
fn fill_streams(addr: std::net::SocketAddr, count: usize) -> Vec<SseStream> {
    (0..count)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["full"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect()
}

/// With every stream slot of `--max-connections` taken, a publish gets `200` and reaches every
/// stream, `/healthz` and `/metrics` answer, and one more subscriber gets `503` with
/// `Retry-After` and a reason naming the flag; once a stream closes, a new one opens. (Guards
/// against issue 15, defect 8: at the cap, publishes were refused too, so the connected
/// subscribers received nothing.)
#[test]
fn at_the_stream_cap_short_requests_are_still_served() {
    let server = TestServer::start(sse_server::Config {
        max_connections: Some(3),
        ..util::config()
    });
    let addr = server.addr;
    let mut streams = fill_streams(addr, 3);

    assert_eq!(get(addr, "/healthz").status, 200, "health at the cap");
    let metrics = get(addr, "/metrics");
    assert_eq!(metrics.status, 200, "metrics at the cap");
    assert!(
        metrics.text().contains("sse_subscribers 3"),
        "{}",
        metrics.text()
    );
    let id = publish(addr, "full", "at the cap");
    for stream in &mut streams {
        assert_eq!(stream.next_event().id, Some(id));
    }

    let refused = get(addr, "/events?topic=full");
    assert_unavailable(&refused, "a fourth stream", "--max-connections");

    // A stream that closes gives its slot back.
    streams.pop();
    let mut reopened = None;
    assert!(
        wait_until(TIMEOUT, || {
            let mut conn = Conn::connect(addr);
            conn.send(b"GET /events?topic=full HTTP/1.1\r\nHost: test\r\n\r\n");
            let opened = conn.read_head(deadline()).status == 200;
            if opened {
                reopened = Some(conn);
            }
            opened
        }),
        "no stream slot after a stream closed"
    );
}

/// The headroom is bounded: with the streams at the cap and [`HEADROOM`] more connections open
/// (kept alive after a request each), the next connection gets `503` at once, whatever it asks;
/// when one of them closes, short requests are served again.
#[test]
fn the_headroom_for_short_requests_is_bounded() {
    let server = TestServer::start(sse_server::Config {
        max_connections: Some(2),
        // The kept-alive connections stay open while the test opens the rest.
        header_timeout: Duration::from_secs(120),
        ..util::config()
    });
    let addr = server.addr;
    let _streams = fill_streams(addr, 2);
    let mut kept: Vec<Conn> = (0..HEADROOM)
        .map(|i| {
            let mut conn = Conn::connect(addr);
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
            let response = conn.read_response(deadline());
            assert_eq!(
                response.status, 200,
                "short request {i} within the headroom"
            );
            conn
        })
        .collect();
    assert_unavailable(
        &get(addr, "/healthz"),
        "a request past the headroom",
        "connection limit",
    );
    drop(kept.pop());
    assert!(
        wait_until(TIMEOUT, || get(addr, "/healthz").status == 200),
        "no room after a kept connection closed"
    );
}

/// A `413` names the limit the body passed, its size and the flag that sets it: a publish over
/// `--max-body` (announced, or found while reading a chunked body), and a subscribe body over
/// its own 8 KiB cap, which `--max-body` does not raise; a `--max-body` below that cap is the
/// subscribe body's limit too. (Guards against issue 15, defect 10: the reply said only
/// "request body too large".)
#[test]
fn a_body_over_its_limit_is_refused_naming_the_limit_and_the_flag() {
    let roomy = TestServer::with_defaults();
    let tight = TestServer::start(sse_server::Config {
        max_body: 4000,
        ..util::config()
    });
    let announced = |length: usize, path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let chunked = format!(
        "POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\n\r\n1000\r\n{}\r\n",
        "x".repeat(4096)
    );
    for (server, request, reason) in [
        (
            &tight,
            announced(4001, "/publish"),
            "request body over --max-body (4 KB)\n",
        ),
        (&tight, chunked, "request body over --max-body (4 KB)\n"),
        (
            &roomy,
            announced(2 << 20, "/publish"),
            "request body over --max-body (1 MiB)\n",
        ),
        (
            &roomy,
            announced(8193, "/events"),
            "subscribe body over 8 KiB (the most a subscription of 16 topics needs; \
             --max-body does not raise it)\n",
        ),
        (
            &tight,
            announced(4001, "/events"),
            "request body over --max-body (4 KB)\n",
        ),
    ] {
        let response = util::request(server.addr, request.as_bytes());
        assert_eq!(response.status, 413, "{request:.60}: {:?}", response.text());
        assert_eq!(response.text(), reason, "{request:.60}");
    }
}
