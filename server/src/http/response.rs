//! Responses: a status line, headers and a body written into one buffer, ready for one write.

use std::fmt::Write as _;

/// Reason phrase for the statuses the server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete, non-streaming response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra header lines, each ending in CRLF.
    pub headers: String,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given type.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: String::new(),
            content_type,
            body: body.into(),
        }
    }

    /// A `text/plain` response: the reason, and a line end.
    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Response {
        let _ = write!(self.headers, "{name}: {value}\r\n");
        self
    }

    /// Appends the response's bytes to `out`. `keep_alive` adds the matching `Connection`
    /// header for the request's HTTP version; `head_only` leaves the body out (for `HEAD`).
    pub fn write_to(
        &self,
        out: &mut Vec<u8>,
        minor_version: u8,
        keep_alive: bool,
        head_only: bool,
    ) {
        let mut head = String::with_capacity(160 + self.headers.len());
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        match (keep_alive, minor_version) {
            (false, _) => head.push_str("Connection: close\r\n"),
            (true, 0) => head.push_str("Connection: keep-alive\r\n"),
            (true, _) => {}
        }
        head.push_str(&self.headers);
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a keep-alive, a closing and a HEAD response.
    #[test]
    fn writes_exact_bytes() {
        let response = Response::text(404, "no such path").header("X-A", 1);
        let mut out = Vec::new();
        response.write_to(&mut out, 1, true, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\nX-A: 1\r\n\r\nno such path\n"
        );
        let mut out = Vec::new();
        response.write_to(&mut out, 0, false, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\nConnection: close\r\nX-A: 1\r\n\r\n"
        );
    }
}
