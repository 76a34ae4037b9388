//! HTTP/1.x handling: keep-alive, pipelining, HTTP/1.0, chunked and `Expect` bodies, and every
//! refused request with its status and reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    self, Conn, Response, SseStream, TIMEOUT, TestServer, deadline, form, get, metric, metrics,
    parse_id, post_form_request, publish, wait_until,
};

/// Checks the shape every refusal must have: the status, `text/plain`, and a short reason.
fn assert_refusal(response: &Response, status: u16, what: &str) {
    assert_eq!(
        response.status,
        status,
        "{what}: got {} {:?}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "{what}: Content-Type {content_type:?}"
    );
    assert!(
        !response.body.is_empty() && response.body.len() < 500,
        "{what}: reason {:?}",
        String::from_utf8_lossy(&response.body)
    );
}

/// A publish request with a raw `text/plain` body.
fn raw_publish_request(query: &str, body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /publish?{query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One connection serves several requests in turn (HTTP/1.1 keep-alive), and closes after a
/// request that asks for it.
#[test]
fn keep_alive_serves_sequential_requests() {
    let server = TestServer::with_defaults();
    let mut conn = Conn::connect(server.addr);
    let mut ids = Vec::new();
    for i in 0..3 {
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
        let response = conn.read_response(deadline());
        assert_eq!((response.status, response.text().trim()), (200, "ok"));
        let body = form(&[("topic", "ka"), ("data", &i.to_string())]);
        conn.send(&post_form_request("/publish", &body, ""));
        ids.push(parse_id(&conn.read_response(deadline())));
        conn.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(conn.read_response(deadline()).status, 200);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_eq!(conn.read_response(deadline()).status, 200);
    assert!(
        conn.wait_closed(deadline()),
        "closed after `Connection: close`"
    );
}

/// Requests sent back to back in one write are all answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::with_defaults();
    let mut stream = SseStream::subscribe(server.addr, &["pipe"]);
    stream.read_preamble(deadline());
    let mut batch = Vec::new();
    batch.extend(post_form_request("/publish", "topic=pipe&data=one", ""));
    batch.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    batch.extend(raw_publish_request("topic=pipe", b"two", ""));
    batch.extend_from_slice(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    batch.extend(post_form_request(
        "/publish",
        "topic=pipe&data=three",
        "Connection: close\r\n",
    ));
    let mut conn = Conn::connect(server.addr);
    conn.send(&batch);
    let one = parse_id(&conn.read_response(deadline()));
    assert_eq!(conn.read_response(deadline()).text().trim(), "ok");
    let two = parse_id(&conn.read_response(deadline()));
    assert!(conn.read_response(deadline()).text().contains("sse_"));
    let three = parse_id(&conn.read_response(deadline()));
    assert!(conn.wait_closed(deadline()));
    for (id, data) in [(one, "one"), (two, "two"), (three, "three")] {
        let event = stream.next_event();
        assert_eq!((event.id, event.data_text()), (Some(id), data.to_string()));
    }

    // A subscription may follow other requests on a kept-alive connection.
    let mut conn = Conn::connect(server.addr);
    conn.send(
        b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n\
          GET /events?topic=pipe HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(conn.read_response(deadline()).text().trim(), "ok");
    let mut late = SseStream::from_conn(conn);
    late.read_preamble(deadline());
    let four = publish(server.addr, "pipe", "four");
    assert_eq!(late.next_event().id, Some(four));
}

/// A request trickled in one byte per write is parsed like any other.
#[test]
fn request_split_into_single_bytes() {
    let server = TestServer::with_defaults();
    let mut conn = Conn::connect(server.addr);
    for &byte in raw_publish_request("topic=bytes", b"one byte at a time", "").iter() {
        conn.send(&[byte]);
    }
    let response = conn.read_response(deadline());
    assert_eq!(response.status, 200, "{:?}", response.text());
    parse_id(&response);
}

/// HTTP/1.0 clients can check health, publish and subscribe; the server closes each
/// non-streaming connection after its response (no keep-alive was asked for) and never
/// chunks a stream to them.
#[test]
fn http10_clients_work() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut stream = SseStream::open_raw(addr, b"GET /events?topic=old HTTP/1.0\r\n\r\n");
    assert!(!stream.head.is_chunked(), "no chunked coding for HTTP/1.0");
    stream.read_preamble(deadline());

    let mut conn = Conn::connect(addr);
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let response = conn.read_response(deadline());
    assert_eq!((response.status, response.text().trim()), (200, "ok"));
    assert!(conn.wait_closed(deadline()), "HTTP/1.0 connection closed");

    let body = "topic=old&data=from+1.0";
    let mut conn = Conn::connect(addr);
    conn.send(
        format!(
            "POST /publish HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let id = parse_id(&conn.read_response(deadline()));
    assert!(conn.wait_closed(deadline()), "HTTP/1.0 connection closed");
    let event = stream.next_event();
    assert_eq!((event.id, event.data_text()), (Some(id), "from 1.0".into()));
}

/// A chunked publish body (with a chunk extension and a trailer, sent in pieces) is
/// reassembled; form bodies may be chunked too.
#[test]
fn chunked_publish_bodies_work() {
    let server = TestServer::with_defaults();
    let mut stream = SseStream::subscribe(server.addr, &["chunks"]);
    stream.read_preamble(deadline());
    let mut conn = Conn::connect(server.addr);
    conn.send(
        b"POST /publish?topic=chunks HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhel",
    );
    conn.send(b"lo\r\n1\r\n \r\n");
    conn.send(b"5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n");
    let raw_id = parse_id(&conn.read_response(deadline()));

    conn.send(
        b"POST /publish HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
          7\r\ntopic=c\r\nF\r\nhunks&data=form\r\n0\r\n\r\n",
    );
    let form_id = parse_id(&conn.read_response(deadline()));

    let event = stream.next_event();
    assert_eq!(
        (event.id, event.data_text()),
        (Some(raw_id), "hello world".into())
    );
    let event = stream.next_event();
    assert_eq!(
        (event.id, event.data_text()),
        (Some(form_id), "form".into())
    );
}

/// With `Expect: 100-continue` the server answers `100 Continue` before the body is sent, then
/// the final response.
#[test]
fn expect_continue_publish() {
    let server = TestServer::with_defaults();
    let mut stream = SseStream::subscribe(server.addr, &["expect"]);
    stream.read_preamble(deadline());
    let mut conn = Conn::connect(server.addr);
    let body = "topic=expect&data=continued";
    conn.send(
        format!(
            "POST /publish HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = conn.read_head(deadline());
    assert_eq!(interim.status, 100, "interim response {interim:?}");
    conn.send(body.as_bytes());
    let id = parse_id(&conn.read_response(deadline()));
    let event = stream.next_event();
    assert_eq!(
        (event.id, event.data_text()),
        (Some(id), "continued".into())
    );

    // A client may send the body without waiting for `100 Continue`; the next request on the
    // connection must still parse.
    let body = "topic=expect&data=eager";
    conn.send(
        format!(
            "POST /publish HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let id = parse_id(&conn.read_response(deadline()));
    assert_eq!(conn.read_response(deadline()).text().trim(), "ok");
    let event = stream.next_event();
    assert_eq!((event.id, event.data_text()), (Some(id), "eager".into()));
}

/// Header names are case-insensitive, and `chunked` is recognised in any case.
#[test]
fn header_names_in_any_case() {
    let server = TestServer::with_defaults();
    let mut stream = SseStream::subscribe(server.addr, &["case"]);
    stream.read_preamble(deadline());
    let mut conn = Conn::connect(server.addr);
    conn.send(
        b"POST /publish?topic=case HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\n\
          content-length: 5\r\n\r\nlower",
    );
    let lower = parse_id(&conn.read_response(deadline()));
    conn.send(
        b"POST /publish?topic=case HTTP/1.1\r\nHOST: LOCALHOST\r\nCONTENT-TYPE: text/plain\r\n\
          TRANSFER-ENCODING: Chunked\r\n\r\n5\r\nupper\r\n0\r\n\r\n",
    );
    let upper = parse_id(&conn.read_response(deadline()));
    for (id, data) in [(lower, "lower"), (upper, "upper")] {
        let event = stream.next_event();
        assert_eq!((event.id, event.data_text()), (Some(id), data.to_string()));
    }
}

/// Every malformed or refused request gets its status with a short `text/plain` reason, the
/// server keeps serving, and a subscriber of the topic the bad requests aimed at receives
/// nothing but the good events around them (no event injection, nothing lost).
#[test]
fn bad_requests_get_their_status() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["t"]);
    stream.read_preamble(deadline());
    let before = publish(addr, "t", "before");

    let long_topic = "x".repeat(129);
    let publish_form = |body: &str| post_form_request("/publish", body, "Connection: close\r\n");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            "header line without colon",
            b"GET /healthz HTTP/1.1\r\nHost test\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "chunk data not followed by CRLF",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "both Content-Length and Transfer-Encoding",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "Content-Length not a number",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: abc\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "negative Content-Length",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: -5\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "Content-Length with a sign",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: +5\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "two different Content-Lengths",
            b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
                .to_vec(),
            400,
        ),
        (
            "raw data not UTF-8",
            raw_publish_request("topic=t", b"\xff\xfe bad", "Connection: close\r\n"),
            400,
        ),
        (
            "form data not UTF-8",
            publish_form("topic=t&data=%FF%FE"),
            400,
        ),
        (
            "topic with LF",
            publish_form("topic=t%0Ainjected&data=x"),
            400,
        ),
        (
            "topic with CR",
            publish_form("topic=t%0Dinjected&data=x"),
            400,
        ),
        ("topic with NUL", publish_form("topic=t%00&data=x"), 400),
        (
            "query topic with LF",
            raw_publish_request("topic=t%0Aid:%201", b"x", "Connection: close\r\n"),
            400,
        ),
        (
            "event type with LF",
            publish_form("topic=t&event=a%0Adata:%20evil&data=x"),
            400,
        ),
        (
            "event type with CR",
            publish_form("topic=t&event=a%0Devil&data=x"),
            400,
        ),
        (
            "event type with NUL",
            publish_form("topic=t&event=a%00&data=x"),
            400,
        ),
        (
            "query event type with CRLF",
            raw_publish_request(
                "topic=t&event=a%0D%0Aid:%209",
                b"x",
                "Connection: close\r\n",
            ),
            400,
        ),
        ("missing topic", publish_form("data=no+topic"), 400),
        ("empty topic", publish_form("topic=&data=x"), 400),
        (
            "topic too long",
            publish_form(&format!("topic={long_topic}&data=x")),
            400,
        ),
        (
            "raw publish without topic",
            raw_publish_request("event=x", b"x", "Connection: close\r\n"),
            400,
        ),
        (
            "subscribe to a topic with LF",
            b"GET /events?topic=a%0Ab HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(),
            400,
        ),
        (
            "unknown path",
            b"GET /nope HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec(),
            404,
        ),
        (
            "GET /publish",
            b"GET /publish HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        (
            "DELETE /events",
            b"DELETE /events HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        (
            "PUT /healthz",
            b"PUT /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n".to_vec(),
            405,
        ),
    ];
    for (what, raw, status) in &cases {
        let response = util::request(addr, raw);
        assert_refusal(&response, *status, what);
        if *status == 405 {
            let allow = response.header("allow").unwrap_or_default();
            assert!(!allow.is_empty(), "{what}: 405 without Allow");
            let method = String::from_utf8_lossy(raw)
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            assert!(
                !response.header_has_token("allow", &method),
                "{what}: Allow {allow:?} lists the refused method"
            );
        }
        // The server carries on after each one.
        assert_eq!(get(addr, "/healthz").status, 200, "after {what}");
    }
    let allow = util::request(
        addr,
        &cases.iter().find(|c| c.0 == "GET /publish").unwrap().1,
    );
    assert!(
        allow.header_has_token("allow", "POST"),
        "{:?}",
        allow.headers
    );

    let after = publish(addr, "t", "after");
    assert_eq!(stream.next_event().id, Some(before));
    let event = stream.next_event();
    assert_eq!(
        event.id,
        Some(after),
        "a refused request reached the stream: {:?}",
        String::from_utf8_lossy(&event.raw)
    );

    let rejected = |status: u16| {
        metric(
            &metrics(addr),
            &format!("sse_rejected_requests_total{{status=\"{status}\"}}"),
        )
    };
    for status in [400, 404, 405] {
        assert!(
            wait_until(TIMEOUT, || rejected(status) >= 1.0),
            "no rejected count for {status}"
        );
    }
}

/// A request head that is not complete within `header_timeout` gets `408` (slowloris), whether
/// the client goes quiet or keeps trickling bytes; other clients are served meanwhile.
#[test]
fn slow_request_head_gets_408() {
    let server = TestServer::start(sse_server::Config {
        header_timeout: Duration::from_millis(500),
        ..util::config()
    });
    let addr = server.addr;

    let mut quiet = Conn::connect(addr);
    quiet.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n");

    let mut trickling = Conn::connect(addr);
    trickling.send(b"GET /healthz HTTP/1.1\r\n");
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let mut writer = trickling.stream.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            use std::io::Write;
            let end = Instant::now() + TIMEOUT;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if writer.write_all(b"X").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Someone else is served normally meanwhile.
    assert_eq!(get(addr, "/healthz").status, 200);

    let response = quiet.read_response(deadline());
    assert_refusal(&response, 408, "quiet client");
    assert!(quiet.wait_closed(deadline()));

    let response = trickling.read_response(deadline());
    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    assert_refusal(&response, 408, "trickling client");

    // A complete head whose body never completes is not kept forever either.
    let mut slow_body = Conn::connect(addr);
    slow_body.send(
        b"POST /publish?topic=t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 10\r\n\r\nab",
    );
    let response = slow_body.read_response(deadline());
    assert_refusal(&response, 408, "body never completed");

    // A connection that never sends a byte is closed too (with or without a 408).
    let mut silent = Conn::connect(addr);
    assert!(
        silent.wait_closed(deadline()),
        "idle connection never closed"
    );
    assert_eq!(get(addr, "/healthz").status, 200);
}

/// A publish body over `max_body` is refused with `413` as soon as that is known, without the
/// server reading it all: by `Content-Length`, with `Expect`, and for a chunked body. A body of
/// exactly `max_body` is accepted.
#[test]
fn oversized_body_gets_413_early() {
    const MAX_BODY: usize = 64 * 1024;
    let server = TestServer::start(sse_server::Config {
        max_body: MAX_BODY as _,
        ..util::config()
    });
    let addr = server.addr;

    let mut conn = Conn::connect(addr);
    conn.send(
        b"POST /publish?topic=big HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 10000000\r\n\r\n",
    );
    conn.send(&[b'a'; 1000]);
    assert_refusal(
        &conn.read_response(deadline()),
        413,
        "Content-Length over max",
    );

    let mut conn = Conn::connect(addr);
    conn.send(
        b"POST /publish?topic=big HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_refusal(
        &conn.read_response(deadline()),
        413,
        "Expect with length over max",
    );

    // A chunked body grows past the limit while the client keeps sending.
    let mut conn = Conn::connect(addr);
    conn.send(
        b"POST /publish?topic=big HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let mut writer = conn.stream.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            use std::io::Write;
            let mut chunk = b"2000\r\n".to_vec();
            chunk.extend_from_slice(&[b'c'; 0x2000]);
            chunk.extend_from_slice(b"\r\n");
            // Never more than 100 MB, whatever the server does.
            for _ in 0..12_800 {
                if stop.load(Ordering::Relaxed) || writer.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    };
    let response = conn.read_response(deadline());
    stop.store(true, Ordering::Relaxed);
    drop(conn);
    sender.join().unwrap();
    assert_refusal(&response, 413, "chunked body over max");

    let mut stream = SseStream::subscribe(addr, &["big"]);
    stream.read_preamble(deadline());
    let fits = util::request(
        addr,
        &raw_publish_request("topic=big", &[b'f'; MAX_BODY], ""),
    );
    assert_eq!(fits.status, 200, "a body of exactly max_body");
    let event = stream.next_event();
    assert_eq!(event.id, Some(parse_id(&fits)));
    assert_eq!(
        event.data_text().len(),
        MAX_BODY,
        "no stray event from the refused bodies"
    );
    let over = util::request(
        addr,
        &raw_publish_request("topic=big", &[b'f'; MAX_BODY + 1], ""),
    );
    assert_refusal(&over, 413, "one byte over max");
}

/// A request head over 8 KiB gets `431`; one a little under is served.
#[test]
fn oversized_request_head_gets_431() {
    let server = TestServer::with_defaults();
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "f".repeat(7000)
    );
    assert_eq!(util::request(server.addr, fits.as_bytes()).status, 200);
    let too_big = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Filler: {}\r\n\r\n",
        "f".repeat(9000)
    );
    assert_refusal(
        &util::request(server.addr, too_big.as_bytes()),
        431,
        "9 KB header",
    );
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\n{}\r\n",
        "X-Many: 0123456789012345678901234567890123456789\r\n".repeat(300)
    );
    assert_refusal(
        &util::request(server.addr, many.as_bytes()),
        431,
        "300 headers",
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);
}
