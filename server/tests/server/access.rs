//! Publish and subscribe tokens, the local rule for publishing without a token, the start-up
//! warning, and CORS.

use std::net::SocketAddr;

use crate::util::{
    self, Response, ServerProcess, SseStream, TIMEOUT, TestServer, deadline, post_form_request,
    request,
};

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
/// on streams and publishes; another origin gets no allow header. (A page from a non-loopback
/// origin publishes with the token, allowed origin or not.)
#[test]
fn cors_headers_for_allowed_origin_only() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["https://app.example".into()],
        publish_token: Some("s3cret".into()),
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
            "Origin: https://app.example\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n",
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

/// A form publish of `data` on topic `local` with exactly the header lines given (the `Host`
/// line included, so each case chooses its own), closing the connection after.
fn publish_with(headers: &str, data: &str) -> Vec<u8> {
    let body = format!("topic=local&data={data}");
    format!(
        "POST /publish HTTP/1.1\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Each request shape refused without a token (over real sockets from 127.0.0.1): what it
/// shows, its header lines, and the part of the reason that names it.
fn refused_shapes(addr: SocketAddr) -> Vec<(&'static str, String, &'static str)> {
    let host = format!("Host: {addr}\r\n");
    vec![
        (
            "nginx-style proxy",
            format!("{host}X-Real-IP: 192.0.2.7\r\nX-Forwarded-For: 192.0.2.7\r\n"),
            "through a proxy",
        ),
        (
            "Forwarded",
            format!("{host}Forwarded: for=192.0.2.7;proto=https\r\n"),
            "through a proxy",
        ),
        (
            "X-Forwarded-For alone",
            format!("{host}X-Forwarded-For: 192.0.2.7\r\n"),
            "through a proxy",
        ),
        (
            "proxy keeping the public Host",
            "Host: sse.example.com\r\n".to_owned(),
            "loopback Host",
        ),
        (
            "DNS rebinding",
            format!("Host: rebind.attacker.example:{}\r\n", addr.port()),
            "loopback Host",
        ),
        (
            "foreign browser origin",
            format!("{host}Origin: https://evil.example\r\n"),
            "non-loopback Origin",
        ),
        (
            "sandboxed page",
            format!("{host}Origin: null\r\n"),
            "non-loopback Origin",
        ),
    ]
}

/// Without `--publish-token`, a publish that shows a proxy hop, a non-loopback `Host` or a
/// non-loopback browser `Origin` gets `403` with a plain-text reason naming what it showed and
/// telling to set `--publish-token`, and publishes nothing. (`--cors-origin *` lets the foreign
/// origins past CORS, so the publish rule itself is what refuses them.)
#[test]
fn publishing_without_token_refuses_proxied_and_browser_requests() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["*".into()],
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["local"]);
    stream.read_preamble(deadline());
    for (what, headers, named) in refused_shapes(addr) {
        let response = request(addr, &publish_with(&headers, "refused"));
        assert_eq!(response.status, 403, "{what}: {:?}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{what}"
        );
        let reason = response.text();
        assert!(reason.contains(named), "{what}: {reason:?}");
        assert!(reason.contains("set --publish-token"), "{what}: {reason:?}");
    }
    let response = request(addr, &publish_with(&format!("Host: {addr}\r\n"), "local"));
    assert_eq!(response.status, 200, "{:?}", response.text());
    let event = stream.next_event();
    assert_eq!(
        (event.id, event.data_text()),
        (Some(util::parse_id(&response)), "local".to_owned()),
        "only the local publish arrives"
    );
}

/// With `--publish-token`, every shape refused above publishes with the right bearer token (a
/// proxy that forwards can publish), and gets `401` without it.
#[test]
fn publish_token_admits_proxied_and_browser_requests() {
    let server = TestServer::start(sse_server::Config {
        cors_origins: vec!["*".into()],
        publish_token: Some("s3cret".into()),
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["local"]);
    stream.read_preamble(deadline());
    for (what, headers, _) in refused_shapes(addr) {
        let response = request(addr, &publish_with(&headers, "no-token"));
        assert_eq!(response.status, 401, "{what}: {:?}", response.text());
        let with_token = format!("{headers}Authorization: Bearer s3cret\r\n");
        let response = request(addr, &publish_with(&with_token, "token"));
        assert_eq!(response.status, 200, "{what}: {:?}", response.text());
        let event = stream.next_event();
        assert_eq!(
            (event.id, event.data_text()),
            (Some(util::parse_id(&response)), "token".to_owned()),
            "{what}"
        );
    }
}

/// Plain local publishing keeps working without a token: curl's request (`Host:
/// 127.0.0.1:PORT`), `localhost` and `[::1]` names, a page served by this host (loopback
/// `Origin`), and HTTP/1.0 with no `Host` at all.
#[test]
fn local_publishing_without_token_keeps_working() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let port = addr.port();
    let mut stream = SseStream::subscribe(addr, &["local"]);
    stream.read_preamble(deadline());
    let cases = [
        (
            "curl",
            format!("Host: {addr}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"),
        ),
        ("localhost", format!("Host: localhost:{port}\r\n")),
        ("[::1]", format!("Host: [::1]:{port}\r\n")),
        (
            "same-origin page",
            format!("Host: {addr}\r\nOrigin: http://{addr}\r\n"),
        ),
    ];
    for (what, headers) in cases {
        let response = request(addr, &publish_with(&headers, what));
        assert_eq!(response.status, 200, "{what}: {:?}", response.text());
        let event = stream.next_event();
        assert_eq!(
            (event.id, event.data_text()),
            (Some(util::parse_id(&response)), what.to_owned())
        );
    }
    let body = "topic=local&data=old";
    let response = request(
        addr,
        format!(
            "POST /publish HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(response.status, 200, "HTTP/1.0: {:?}", response.text());
    assert_eq!(stream.next_event().data_text(), "old");
}

/// Listening beyond loopback without a token warns at start, naming the address, what is
/// exposed and what to set; on loopback, or with a token, nothing is said. Checked on the
/// configuration, so no test binds a non-loopback address.
#[test]
fn startup_warning_for_non_loopback_listen_without_token() {
    let warning = |listen: &str, token: Option<&str>| {
        let config = sse_server::Config {
            listen: listen.parse().unwrap(),
            publish_token: token.map(String::from),
            ..util::config()
        };
        sse_server::access::Access::new(&config).exposure_warning(config.listen)
    };
    for listen in ["0.0.0.0:8080", "[::]:8080", "192.0.2.7:8080"] {
        let text = warning(listen, None).unwrap_or_else(|| panic!("no warning for {listen}"));
        assert!(text.starts_with("sse-server: warning: "), "{text}");
        for part in [listen, "POST /publish", "set --publish-token"] {
            assert!(
                text.contains(part),
                "{listen}: {part:?} missing from {text:?}"
            );
        }
        assert_eq!(warning(listen, Some("t")), None, "{listen} with a token");
    }
    for listen in ["127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080"] {
        assert_eq!(warning(listen, None), None, "{listen}");
    }
}

/// The real binary's start-up output states the publish policy, and on loopback prints no
/// warning: with no token the line says publishing is local-only, with one it says a bearer
/// token is needed.
#[test]
fn binary_states_publish_policy_at_start() {
    for (args, policy) in [
        (&[][..], "publish=local-only"),
        (&["--publish-token", "s3cret"][..], "publish=bearer-token"),
    ] {
        let mut server = ServerProcess::spawn(args);
        assert!(
            server.startup_line.contains(policy),
            "{args:?}: {:?}",
            server.startup_line
        );
        server.signal("TERM");
        let status = server.wait_exit(TIMEOUT).expect("server exits");
        assert!(status.success(), "{status:?}");
        let stderr = server.stderr_output();
        assert!(!stderr.contains("warning"), "{args:?}: {stderr}");
    }
}
