//! Publish and subscribe tokens, and CORS.

use crate::util::{self, Response, SseStream, TestServer, deadline, post_form_request, request};

/// A request line plus `Host`, extra header lines and `Connection: close`.
fn get_with(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

/// Reads just the head of a response (streams never end, so the body is not awaited).
fn head_of(addr: std::net::SocketAddr, raw: &[u8]) -> Response {
    let mut conn = util::Conn::connect(addr);
    conn.send(raw);
    conn.read_head(deadline())
}

/// With `publish_token` set, publishing needs `Authorization: Bearer <token>`: missing or wrong
/// gets `401` (with `WWW-Authenticate`, as HTTP requires); subscribing needs nothing.
#[test]
fn publish_token_is_required() {
    let server = TestServer::start(sse_server::Config {
        publish_token: Some("s3cret".into()),
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["auth"]);
    stream.read_preamble(deadline());
    let body = "topic=auth&data=x";
    for (what, header) in [
        ("no token", ""),
        ("wrong token", "Authorization: Bearer wrong\r\n"),
        ("wrong scheme", "Authorization: Basic czNjcmV0\r\n"),
    ] {
        let response = request(
            addr,
            &post_form_request("/publish", body, &format!("{header}Connection: close\r\n")),
        );
        assert_eq!(response.status, 401, "{what}: {:?}", response.text());
        assert!(
            response.header("www-authenticate").is_some(),
            "{what}: no WWW-Authenticate"
        );
    }
    let response = request(
        addr,
        &post_form_request(
            "/publish",
            body,
            "Authorization: Bearer s3cret\r\nConnection: close\r\n",
        ),
    );
    assert_eq!(response.status, 200, "{:?}", response.text());
    let id = util::parse_id(&response);
    assert_eq!(
        stream.next_event().id,
        Some(id),
        "only the authorized event arrives"
    );
}

/// With `subscribe_token` set, subscribing needs the token in `Authorization: Bearer` or the
/// `access_token` query parameter (`401` otherwise); publishing from loopback does not.
#[test]
fn subscribe_token_in_header_or_query() {
    let server = TestServer::start(sse_server::Config {
        subscribe_token: Some("letmein".into()),
        ..util::config()
    });
    let addr = server.addr;
    for (what, path, header) in [
        ("no token", "/events?topic=s", ""),
        (
            "wrong header",
            "/events?topic=s",
            "Authorization: Bearer nope\r\n",
        ),
        ("wrong query", "/events?topic=s&access_token=nope", ""),
    ] {
        let response = request(addr, &get_with(path, header));
        assert_eq!(response.status, 401, "{what}: {:?}", response.text());
    }
    let mut by_header =
        SseStream::open(addr, "/events?topic=s", "Authorization: Bearer letmein\r\n");
    let mut by_query = SseStream::open(addr, "/events?access_token=letmein&topic=s", "");
    by_header.read_preamble(deadline());
    by_query.read_preamble(deadline());
    let id = util::publish(addr, "s", "for members");
    assert_eq!(by_header.next_event().id, Some(id));
    assert_eq!(by_query.next_event().id, Some(id));
}

/// An allowed origin gets `Access-Control-Allow-Origin` with its own value (and `Vary: Origin`)
/// on streams and publishes; another origin gets no allow header.
#[test]
fn cors_headers_for_allowed_origin_only() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["https://app.example".into()],
        ..util::config()
    });
    let addr = server.addr;
    let stream = head_of(
        addr,
        &get_with("/events?topic=c", "Origin: https://app.example\r\n"),
    );
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        stream.header_has_token("vary", "origin"),
        "{:?}",
        stream.headers
    );

    let published = request(
        addr,
        &post_form_request(
            "/publish",
            "topic=c&data=x",
            "Origin: https://app.example\r\nConnection: close\r\n",
        ),
    );
    assert_eq!(published.status, 200);
    assert_eq!(
        published.header("access-control-allow-origin"),
        Some("https://app.example")
    );

    let foreign = head_of(
        addr,
        &get_with("/events?topic=c", "Origin: https://evil.example\r\n"),
    );
    assert_eq!(
        foreign.header("access-control-allow-origin"),
        None,
        "{:?}",
        foreign.headers
    );
}

/// A preflight `OPTIONS` from an allowed origin is answered with the methods and the request
/// headers EventSource and publishers need (`Last-Event-ID`, `Authorization`, `Content-Type`).
#[test]
fn cors_preflight() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["https://app.example".into()],
        ..util::config()
    });
    let addr = server.addr;
    let preflight = |path: &str, method: &str, headers: &str| {
        request(
            addr,
            format!(
                "OPTIONS {path} HTTP/1.1\r\nHost: test\r\nOrigin: https://app.example\r\n\
                 Access-Control-Request-Method: {method}\r\n\
                 Access-Control-Request-Headers: {headers}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let publish = preflight("/publish", "POST", "authorization, content-type");
    assert!(
        matches!(publish.status, 200 | 204),
        "status {}",
        publish.status
    );
    assert_eq!(
        publish.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        publish.header_has_token("access-control-allow-methods", "POST"),
        "{:?}",
        publish.headers
    );
    for header in ["authorization", "content-type"] {
        assert!(
            publish.header_has_token("access-control-allow-headers", header),
            "{header} not allowed: {:?}",
            publish.headers
        );
    }

    let events = preflight("/events", "GET", "last-event-id");
    assert!(
        matches!(events.status, 200 | 204),
        "status {}",
        events.status
    );
    assert_eq!(
        events.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        events.header_has_token("access-control-allow-methods", "GET"),
        "{:?}",
        events.headers
    );
    assert!(
        events.header_has_token("access-control-allow-headers", "last-event-id"),
        "{:?}",
        events.headers
    );
}

/// `*` allows every origin.
#[test]
fn cors_wildcard() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["*".into()],
        ..util::config()
    });
    let stream = head_of(
        server.addr,
        &get_with("/events?topic=w", "Origin: https://anywhere.example\r\n"),
    );
    assert_eq!(stream.status, 200);
    let allowed = stream.header("access-control-allow-origin");
    assert!(
        matches!(allowed, Some("*" | "https://anywhere.example")),
        "{allowed:?}"
    );
}
