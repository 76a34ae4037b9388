//! A server's answer kept to quote it: when a run measured nothing, the error shows the first
//! reply that was not what the load generator asked for (`400 Bad Request: "missing topic"`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::http::{BodyDecoder, ResponseHead};

/// Longest body excerpt kept, in bytes.
pub const EXCERPT_BYTES: usize = 200;

/// The status, content type and body beginning of one response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReply {
    /// The HTTP status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The beginning of the body (decoded when chunked), lossily as UTF-8, trimmed.
    pub excerpt: String,
}

impl ServerReply {
    /// The reply with head `head`, of whose body `body` has arrived so far.
    pub fn new(head: &ResponseHead, body: &[u8]) -> ServerReply {
        let mut decoded = Vec::new();
        // A body that does not decode is quoted as far as it did.
        let _ = BodyDecoder::new(head.body).feed(body, &mut |chunk| {
            decoded.extend_from_slice(chunk);
        });
        decoded.truncate(EXCERPT_BYTES);
        ServerReply {
            status: head.status,
            reason: head.reason.clone(),
            content_type: head.header("content-type").map(str::to_string),
            excerpt: String::from_utf8_lossy(&decoded).trim().to_string(),
        }
    }
}

/// `400 Bad Request: "missing topic"`; a 2xx reply also names its content type, since that is
/// what was wrong with it.
impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)?;
        if (200..300).contains(&self.status) {
            write!(
                f,
                ", content type {}",
                self.content_type.as_deref().unwrap_or("none")
            )?;
        }
        if !self.excerpt.is_empty() {
            write!(f, ": {:?}", self.excerpt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    /// Replies as the error quotes them, from raw responses.
    #[test]
    fn quotes_status_content_type_and_body() {
        let table: &[(&[u8], &str)] = &[
            (
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nmissing topic",
                "400 Bad Request: \"missing topic\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n",
                "200 OK, content type text/plain: \"ok\"",
            ),
            (
                b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfull\r\n0\r\n\r\n",
                "503 Service Unavailable: \"full\"",
            ),
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                "404 Not Found",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", "200 OK, content type none"),
        ];
        for (raw, want) in table {
            let (head, len) = parse_head(raw).unwrap().unwrap();
            assert_eq!(ServerReply::new(&head, &raw[len..]).to_string(), *want);
        }
    }
}
