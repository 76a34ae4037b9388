//! Who may do what: bearer tokens for publishing and subscribing, JSON Web Tokens that name the
//! topics their holder may use ([`jwt`]), the local rule for publishing without a token
//! ([`local`]), and CORS. Each request is checked once, by the router: [`Access::authorize`]
//! gives a [`Grant`] (or a [`Refusal`]), and the router checks the request's topics against it
//! once it knows them (after the body, for a `POST`).

pub mod jwt;
pub mod local;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Config;
use crate::http::HttpError;
use crate::http::request::RequestHead;
use jwt::{JwtVerifier, TokenRefusal, covers};

/// What a request wants to do, for [`Access::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Publish an event.
    Publish,
    /// Open an event stream.
    Subscribe,
}

/// Why a request was refused: an HTTP error, or a JSON Web Token that did not verify (answered
/// `401` with `WWW-Authenticate: Bearer error="invalid_token"`, RFC 6750 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Any other refusal, with its status.
    Http(HttpError),
    /// The token is missing, malformed, badly signed or outside its validity.
    InvalidToken(TokenRefusal),
}

impl From<HttpError> for Refusal {
    fn from(error: HttpError) -> Refusal {
        Refusal::Http(error)
    }
}

/// What an authorized request may touch: every topic (a static token, or no token needed), or
/// the topics a JSON Web Token names, until it expires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Topic patterns allowed; `None`: every topic.
    topics: Option<Box<[Box<str>]>>,
    /// When the token stops being valid (`exp` plus the leeway); `None`: never.
    valid_until: Option<SystemTime>,
}

impl Grant {
    /// A grant of every topic, for ever.
    pub fn everything() -> Grant {
        Grant::default()
    }

    /// Checks that every topic is covered: `403` otherwise.
    pub fn check_topics<'a>(
        &self,
        mut topics: impl Iterator<Item = &'a str>,
    ) -> Result<(), HttpError> {
        let Some(patterns) = &self.topics else {
            return Ok(());
        };
        if topics.all(|topic| covers(patterns, topic)) {
            Ok(())
        } else {
            Err(HttpError::new(403, "the token does not cover every topic"))
        }
    }

    /// When a stream opened with this grant must be closed; `None`: never.
    pub fn valid_until(&self) -> Option<SystemTime> {
        self.valid_until
    }
}

/// The access rules of the server, from its configuration.
#[derive(Debug, Clone)]
pub struct Access {
    publish_token: Option<String>,
    subscribe_token: Option<String>,
    /// Verifies JSON Web Tokens, when `--jwt-secret` or `--jwt-public-key` is set.
    jwt: Option<Arc<JwtVerifier>>,
    /// Name of the cookie a subscriber's token may come in (`--jwt-cookie`).
    jwt_cookie: Option<String>,
    cors_origins: Vec<String>,
}

impl Access {
    /// The rules `config` sets.
    pub fn new(config: &Config) -> Access {
        Access {
            publish_token: config.publish_token.clone(),
            subscribe_token: config.subscribe_token.clone(),
            jwt: config.jwt.clone(),
            jwt_cookie: config.jwt_cookie.clone(),
            cors_origins: config.cors_origins.clone(),
        }
    }

    /// Checks that the request may do `permission`, and says which topics it may touch.
    /// `query_token` is the `access_token` query parameter, which subscribers may use instead of
    /// the header (`EventSource` cannot set headers).
    ///
    /// Without JSON Web Tokens configured, the static tokens decide (and without a publish token,
    /// the local rule). With them, every request needs a token: the static one of its kind, if
    /// set, grants every topic; any other is verified as a JSON Web Token. A subscriber's token
    /// comes from `Authorization: Bearer`, then `?access_token=`, then the `--jwt-cookie`
    /// cookie; a publisher's from the header only, since a cookie rides along on cross-site
    /// requests and a query string ends up in access logs.
    pub fn authorize(
        &self,
        head: &RequestHead,
        peer: IpAddr,
        permission: Permission,
        query_token: Option<&str>,
    ) -> Result<Grant, Refusal> {
        let static_token = match permission {
            Permission::Publish => &self.publish_token,
            Permission::Subscribe => &self.subscribe_token,
        };
        let Some(jwt) = &self.jwt else {
            return match (permission, static_token) {
                (Permission::Publish, Some(token)) => check_bearer(head, token, None),
                (Permission::Publish, None) => local::check(head, peer).map_err(HttpError::from),
                (Permission::Subscribe, Some(token)) => check_bearer(head, token, query_token),
                (Permission::Subscribe, None) => Ok(()),
            }
            .map(|()| Grant::everything())
            .map_err(Refusal::Http);
        };
        let presented = match permission {
            Permission::Publish => bearer(head),
            Permission::Subscribe => bearer(head)
                .or(query_token)
                .or_else(|| self.cookie_token(head)),
        };
        let Some(presented) = presented else {
            return Err(Refusal::InvalidToken(TokenRefusal::Missing));
        };
        if static_token
            .as_deref()
            .is_some_and(|token| constant_time_eq(presented.as_bytes(), token.as_bytes()))
        {
            return Ok(Grant::everything());
        }
        let claims = jwt
            .verify(presented, SystemTime::now())
            .map_err(Refusal::InvalidToken)?;
        let topics = match permission {
            Permission::Publish => claims.publish,
            Permission::Subscribe => claims.subscribe,
        };
        Ok(Grant {
            topics: Some(topics),
            valid_until: claims.valid_until,
        })
    }

    /// The value of the `--jwt-cookie` cookie, if the request carries it.
    fn cookie_token<'a>(&self, head: &'a RequestHead) -> Option<&'a str> {
        let name = self.jwt_cookie.as_deref()?;
        head.cookie.as_deref()?.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim().trim_matches('"'))
        })
    }

    /// Whether a subscriber's token may come in the query string, so the router must parse it
    /// before authorizing a `POST /events`.
    pub fn reads_query_token(&self) -> bool {
        self.jwt.is_some() || self.subscribe_token.is_some()
    }

    /// How publishing is decided, for the start-up line.
    pub fn publish_policy(&self) -> &'static str {
        if self.jwt.is_some() {
            "publish=jwt-or-bearer-token"
        } else if self.publish_token.is_some() {
            "publish=bearer-token"
        } else {
            "publish=local-only (no --publish-token: loopback peer, loopback Host and Origin, no proxy headers)"
        }
    }

    /// A warning for the start-up output when the server listens on `listen`, an address other
    /// hosts can reach, with no publish token: the operator evidently serves the network, and
    /// publishing stays open to this host and to whatever forwards through it unmarked.
    pub fn exposure_warning(&self, listen: SocketAddr) -> Option<String> {
        if self.publish_token.is_some()
            || self.jwt.is_some()
            || listen.ip().to_canonical().is_loopback()
        {
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

/// The credentials of `Authorization: Bearer <token>`, if the request has that header.
fn bearer(head: &RequestHead) -> Option<&str> {
    let (scheme, credentials) = head.authorization.as_deref()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Checks `Authorization: Bearer <token>` (or a token from the query string) in constant time.
fn check_bearer(
    head: &RequestHead,
    token: &str,
    query_token: Option<&str>,
) -> Result<(), HttpError> {
    match bearer(head).or(query_token) {
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
