//! Tests of request-head parsing: tables of heads that are refused (with their status) and heads
//! that are accepted (with what is read from them), plus the size and header-count bounds.
//! Kept apart from the parser so that `mod.rs` reads as the rules themselves.

use super::*;

fn parse(raw: &str) -> Result<Option<(RequestHead, usize)>, HttpError> {
    parse_head(raw.as_bytes())
}

fn status(raw: &str) -> u16 {
    parse(raw).expect_err(raw).status
}

/// Each case: a request head and the status it is refused with.
const REFUSED: &[(&str, u16)] = &[
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
        400,
    ),
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        400,
    ),
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    (
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400,
    ),
    // Smuggling shapes (issue 10, defect 7): each is a request two parsers could frame
    // differently.
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\u{a0}\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\u{a0}\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{3000}chunked\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        400,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
    ),
    (
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
    // obs-fold, whitespace before the colon, and a head starting with whitespace.
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        400,
    ),
    ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
    ),
    ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    // Lines end in CRLF: bare LF anywhere in the head, and bare CR.
    ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    ("GET / HTTP/1.1\nHost: a\n\n", 400),
    ("GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
    ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
        417,
    ),
];

/// Malformed heads and forbidden framings get their status.
#[test]
fn refuses_bad_heads() {
    for &(raw, expected) in REFUSED {
        assert_eq!(status(raw), expected, "{raw:?}");
    }
}

/// A partial head asks for more; past 8 KiB it is refused with 431.
#[test]
fn bounds_the_head() {
    assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "a".repeat(9000));
    assert_eq!(status(&big), 431);
    let many: String = (0..70).map(|i| format!("X{i}: y\r\n")).collect();
    assert_eq!(
        status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
        431
    );
}

/// The fields the server uses are extracted, with HTTP/1.0 and 1.1 keep-alive defaults.
#[test]
fn extracts_fields() {
    let raw = "POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nContent-Type: Application/X-WWW-Form-Urlencoded; charset=utf-8\r\n\
               Content-Length: 12\r\nExpect: 100-continue\r\nLast-Event-ID: 5\r\nAuthorization: Bearer t\r\n\r\nbody";
    let (head, len) = parse(raw).unwrap().unwrap();
    assert_eq!(len, raw.len() - 4);
    assert_eq!(head.method, Method::Post);
    assert_eq!(head.path, "/publish");
    assert_eq!(head.query, "topic=a");
    assert_eq!(head.body, BodyFraming::Length(12));
    assert!(head.expect_continue && head.keep_alive);
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(head.last_event_id.as_deref(), Some("5"));
    assert_eq!(head.authorization.as_deref(), Some("Bearer t"));

    let (head, _) = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!head.keep_alive);
    let (head, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(head.keep_alive);
    let (head, _) = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!head.keep_alive);
    let (head, _) = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.body, BodyFraming::Chunked);
    let (head, _) = parse(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t Chunked \t\r\nContent-Type:\ttext/plain \r\n\r\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.body, BodyFraming::Chunked);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    let (head, _) = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.body, BodyFraming::Chunked);
    let (head, _) = parse("GET / HTTP/1.1\r\nHost: a\r\nLast-Event-ID: \u{a0}7\u{2003}\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.last_event_id.as_deref(), Some("\u{a0}7\u{2003}"));
    let (head, _) = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.body, BodyFraming::None);
}
