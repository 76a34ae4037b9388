//! Who may do what: bearer tokens for publishing and subscribing, the local rule for publishing
//! without a token ([`local`]), and CORS. Each request is checked once, by the router.

pub mod local;

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;
use crate::http::HttpError;
use crate::http::request::RequestHead;

/// What a request wants to do, for [`Access::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Publish an event.
    Publish,
    /// Open an event stream.
    Subscribe,
}

/// The access rules of the server, from its configuration.
#[derive(Debug, Clone)]
pub struct Access {
    publish_token: Option<String>,
    subscribe_token: Option<String>,
    cors_origins: Vec<String>,
}

impl Access {
    /// The rules `config` sets.
    pub fn new(config: &Config) -> Access {
        Access {
            publish_token: config.publish_token.clone(),
            subscribe_token: config.subscribe_token.clone(),
            cors_origins: config.cors_origins.clone(),
        }
    }

    /// Checks that the request may do `permission`. `query_token` is the `access_token` query
    /// parameter, which subscribers may use instead of the header (`EventSource` cannot set
    /// headers).
    pub fn authorize(
        &self,
        head: &RequestHead,
        peer: IpAddr,
        permission: Permission,
        query_token: Option<&str>,
    ) -> Result<(), HttpError> {
        match permission {
            Permission::Publish => match &self.publish_token {
                Some(token) => check_bearer(head, token, None),
                None => local::check(head, peer).map_err(HttpError::from),
            },
            Permission::Subscribe => match &self.subscribe_token {
                Some(token) => check_bearer(head, token, query_token),
                None => Ok(()),
            },
        }
    }

    /// How publishing is decided, for the start-up line.
    pub fn publish_policy(&self) -> &'static str {
        if self.publish_token.is_some() {
            "publish=bearer-token"
        } else {
            "publish=local-only (no --publish-token: loopback peer, loopback Host and Origin, no proxy headers)"
        }
    }

    /// A warning for the start-up output when the server listens on `listen`, an address other
    /// hosts can reach, with no publish token: the operator evidently serves the network, and
    /// publishing stays open to this host and to whatever forwards through it unmarked.
    pub fn exposure_warning(&self, listen: SocketAddr) -> Option<String> {
        if self.publish_token.is_some() || listen.ip().to_canonical().is_loopback() {
            return None;
        }
        Some(format!(
            "sse-server: warning: listening on {listen}, beyond loopback, with no --publish-token: \
             other hosts get 403 on POST /publish, but any program on this host may publish, and \
             so may the network through a local proxy that adds no Forwarded, X-Forwarded-For or \
             X-Real-IP header; set --publish-token (SSE_PUBLISH_TOKEN) and publish with \
             Authorization: Bearer TOKEN"
        ))
    }

    /// Whether subscribing needs a token (so the router knows to look for one in the query).
    pub fn subscribe_needs_token(&self) -> bool {
        self.subscribe_token.is_some()
    }

    /// CORS response header lines for this request's `Origin`. A cross-origin request from an
    /// origin that is not allowed is refused with `403`, so no stream is opened for a page that
    /// may not read it.
    pub fn cors_headers(&self, head: &RequestHead) -> Result<String, HttpError> {
        let Some(origin) = head.origin.as_deref() else {
            return Ok(String::new());
        };
        let origins = &self.cors_origins;
        if origins.iter().any(|o| o == origin) {
            // An explicit origin may send credentials (cookies, `withCredentials`).
            return Ok(format!(
                "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
            ));
        }
        if origins.iter().any(|o| o == "*") {
            return Ok("Access-Control-Allow-Origin: *\r\n".to_owned());
        }
        let same_origin = head.host.as_deref().is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        });
        if same_origin {
            Ok(String::new())
        } else {
            Err(HttpError::new(403, "origin not allowed"))
        }
    }
}

/// Checks `Authorization: Bearer <token>` (or a token from the query string) in constant time.
fn check_bearer(
    head: &RequestHead,
    token: &str,
    query_token: Option<&str>,
) -> Result<(), HttpError> {
    let presented = head
        .authorization
        .as_deref()
        .and_then(|value| {
            let (scheme, credentials) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        })
        .or(query_token);
    match presented {
        Some(presented) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(HttpError::new(401, "missing or wrong bearer token")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
