//! Request heads: parsed with `httparse` into a fixed array of headers, bounded in size, and
//! checked for the framing rules of RFC 9112 (one `Content-Length`, never beside
//! `Transfer-Encoding`, only `chunked` as a transfer coding).

use super::HttpError;

/// Largest request head accepted; past it the answer is `431`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header lines accepted in a request head.
pub const MAX_HEADERS: usize = 64;

/// Request methods the server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `OPTIONS`
    Options,
    /// Anything else (answered `405` or `501`).
    Other,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the server uses from a request head, owned so the read buffer can be reused.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// Query string without the `?` (empty if none).
    pub query: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Body framing.
    pub body: BodyFraming,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The connection may serve another request after this one.
    pub keep_alive: bool,
    /// Media type of the body, lower-cased, without parameters.
    pub content_type: Option<String>,
    /// `Authorization` header value.
    pub authorization: Option<String>,
    /// `Origin` header value.
    pub origin: Option<String>,
    /// `Host` header value.
    pub host: Option<String>,
    /// `Cookie` header value (several `Cookie` lines joined with `; `).
    pub cookie: Option<String>,
    /// `Last-Event-ID` header value.
    pub last_event_id: Option<String>,
    /// `Access-Control-Request-Headers` of a preflight.
    pub access_control_request_headers: Option<String>,
    /// A proxy-hop header was present (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host`,
    /// `X-Forwarded-Proto`, `X-Real-IP` or `Via`): the request came through a proxy.
    pub forwarded: bool,
}

/// Parses a request head from the start of `buf`. `Ok(None)` means "not complete yet, read
/// more"; `Ok(Some((head, len)))` gives the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(HttpError::new(431, "request head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => {
            return Err(HttpError::new(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ));
        }
        Err(_) => return Err(HttpError::bad_request("malformed request")),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HttpError::new(431, "request head too large"));
    }
    let method = match request.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let target = request.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let minor_version = request.version.unwrap_or(1);
    let mut head = RequestHead {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        minor_version,
        body: BodyFraming::None,
        expect_continue: false,
        keep_alive: minor_version == 1,
        content_type: None,
        authorization: None,
        origin: None,
        host: None,
        cookie: None,
        last_event_id: None,
        access_control_request_headers: None,
        forwarded: false,
    };
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    for header in request.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HttpError::bad_request("header value is not valid UTF-8"))?
            .trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            if content_length.is_some_and(|l| l != length) {
                return Err(HttpError::bad_request("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone is supported; a coding list ending elsewhere cannot be framed.
            if transfer_encoding || !value.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::new(
                    501,
                    "only Transfer-Encoding: chunked is supported",
                ));
            }
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && minor_version == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(HttpError::new(
                    417,
                    "only Expect: 100-continue is supported",
                ));
            }
            head.expect_continue = minor_version == 1;
        } else if name.eq_ignore_ascii_case("content-type") {
            let media = value.split(';').next().unwrap_or_default().trim();
            head.content_type = Some(media.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("host") {
            if head.host.is_some() {
                return Err(HttpError::bad_request("more than one Host header"));
            }
            head.host = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("cookie") {
            match &mut head.cookie {
                Some(cookie) => {
                    cookie.push_str("; ");
                    cookie.push_str(value);
                }
                None => head.cookie = Some(value.to_owned()),
            }
        } else if name.eq_ignore_ascii_case("last-event-id") {
            head.last_event_id = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            head.access_control_request_headers = Some(value.to_owned());
        } else if [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-real-ip",
            "via",
        ]
        .iter()
        .any(|proxy| name.eq_ignore_ascii_case(proxy))
        {
            head.forwarded = true;
        }
    }
    if minor_version == 1 && head.host.is_none() {
        return Err(HttpError::bad_request(
            "HTTP/1.1 request without Host header",
        ));
    }
    head.body = match (content_length, transfer_encoding) {
        (Some(_), true) => {
            return Err(HttpError::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        (Some(0), false) | (None, false) => BodyFraming::None,
        (Some(length), false) => BodyFraming::Length(length),
        (None, true) => {
            if minor_version == 0 {
                return Err(HttpError::bad_request(
                    "chunked body in an HTTP/1.0 request",
                ));
            }
            BodyFraming::Chunked
        }
    };
    Ok(Some((head, len)))
}

/// `Content-Length` is one or more ASCII digits (RFC 9110 section 8.6); anything else is 400.
fn parse_content_length(value: &str) -> Result<u64, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::bad_request("invalid Content-Length"));
    }
    value
        .parse()
        .map_err(|_| HttpError::bad_request("invalid Content-Length"))
}

#[cfg(test)]
mod tests {
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
        (
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
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
        let (head, _) = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyFraming::None);
    }
}
