//! Request heads: parsed with `httparse` into a fixed array of headers, bounded in size, and
//! checked for the framing rules of RFC 9112 (one `Content-Length`, never beside
//! `Transfer-Encoding`, only `chunked` as a transfer coding).
//!
//! The rules are strict wherever two HTTP implementations could disagree about where a request
//! ends (request smuggling through a proxy in front of the server):
//! - lines end in CRLF only; a bare LF, which RFC 9112 section 2.2 lets a recipient accept, is
//!   refused with `400`, because a proxy that does not split lines at it would see other headers
//!   than we do;
//! - obs-fold (a header line starting with SP or HTAB) is refused with `400` (section 5.2), as is
//!   whitespace between a header name and its colon (section 5.1);
//! - header values are trimmed of SP and HTAB only (RFC 9110 section 5.5), never of other
//!   whitespace: `chunked\u{a0}` is an unknown coding, not `chunked`;
//! - `Content-Length` appears at most once, as digits only; beside `Transfer-Encoding` it is `400`;
//! - `Transfer-Encoding` must end in a single `chunked` (`400` otherwise, section 6.3); another
//!   coding before it is `501` (section 6.1), and in an HTTP/1.0 request it is `400`.

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
    if let Some(error) = bare_lf(&buf[..len]) {
        return Err(error);
    }
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    // The transfer codings of every `Transfer-Encoding` line, in order (RFC 9110 section 5.3:
    // several lines are one comma-separated list).
    let mut codings: Vec<&str> = Vec::new();
    for header in request.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HttpError::bad_request("header value is not valid UTF-8"))
            .map(trim_ows)?;
        if name.eq_ignore_ascii_case("content-length") {
            // Even an equal second value is refused: only a broken or hostile sender repeats
            // the header, and a proxy in front may have kept the other one.
            if content_length.is_some() {
                return Err(HttpError::bad_request(
                    "more than one Content-Length header",
                ));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(',').map(trim_ows).filter(|c| !c.is_empty()) {
                codings.push(coding);
            }
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(trim_ows) {
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
            let media = trim_ows(value.split(';').next().unwrap_or_default());
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
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            check_codings(&codings)?;
            BodyFraming::Chunked
        }
    };
    Ok(Some((head, len)))
}

/// A body is framed by `Transfer-Encoding` only if its last coding is `chunked`, applied once
/// (RFC 9112 sections 6.3 and 7); the server decodes no other coding (`501`, section 6.1).
fn check_codings(codings: &[&str]) -> Result<(), HttpError> {
    let is_chunked = |coding: &&str| coding.eq_ignore_ascii_case("chunked");
    match codings.split_last() {
        Some((last, before)) if is_chunked(last) => {
            if before.iter().any(is_chunked) {
                Err(HttpError::bad_request("chunked applied more than once"))
            } else if before.is_empty() {
                Ok(())
            } else {
                Err(HttpError::new(
                    501,
                    "only Transfer-Encoding: chunked is supported",
                ))
            }
        }
        _ => Err(HttpError::bad_request(
            "Transfer-Encoding does not end in chunked",
        )),
    }
}

/// Optional whitespace around a field value is SP and HTAB only (RFC 9110 section 5.6.3); no
/// other character, Unicode whitespace included, may be dropped from what the client sent.
fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// `400` if a line of the head ends in LF without CR before it.
fn bare_lf(head: &[u8]) -> Option<HttpError> {
    let mut previous = 0u8;
    for &byte in head {
        if byte == b'\n' && previous != b'\r' {
            return Some(HttpError::bad_request(
                "line ending without CR in request head",
            ));
        }
        previous = byte;
    }
    None
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
mod tests;
