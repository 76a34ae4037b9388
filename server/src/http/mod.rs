//! HTTP/1.1, as much as an SSE server needs: request heads ([`request`]), request bodies with
//! `Content-Length` or chunked framing ([`body`]), form decoding ([`form`]), small JSON objects ([`json`]) and responses
//! ([`response`]).

pub mod body;
pub mod form;
pub mod json;
pub mod request;
pub mod response;

/// A request the server refuses: the status and a short plain-text reason for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// Response status code.
    pub status: u16,
    /// Short reason sent as the text/plain body.
    pub reason: &'static str,
}

impl HttpError {
    /// `400 Bad Request` with this reason.
    pub const fn bad_request(reason: &'static str) -> HttpError {
        HttpError {
            status: 400,
            reason,
        }
    }

    /// An error with any status.
    pub const fn new(status: u16, reason: &'static str) -> HttpError {
        HttpError { status, reason }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}
