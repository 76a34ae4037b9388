//! What each request asks for: routing, authorization, CORS, and the parsing of publish and
//! subscribe parameters. Pure functions of the request; the event loop carries the answers out.

use std::net::IpAddr;
use std::sync::Arc;

use crate::broker::{Broker, PublishError};
use crate::config::Config;
use crate::demo;
use crate::event::{EventId, is_valid_name};
use crate::fanout::MAX_TOPICS_PER_SUBSCRIBER;
use crate::http::HttpError;
use crate::http::request::{BodyFraming, Method, RequestHead};
use crate::http::response::Response;
use crate::http::{form, json};
use crate::metrics::Metrics;

/// Headers a cross-origin request may send (preflight answer).
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, Cache-Control, Accept";

/// What the server shares with every event loop.
pub struct App {
    /// Settings.
    pub config: Config,
    /// Id assignment and distribution of events.
    pub broker: Arc<dyn Broker>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// What to do with a request whose head has been read.
#[derive(Debug)]
pub enum Action {
    /// Send this response.
    Respond(Response),
    /// Read the body first, then call [`App::finish`].
    ReadBody(BodyUse),
    /// Turn the connection into an event stream.
    Subscribe(Subscription),
}

/// What a request body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// `POST /publish`
    Publish,
    /// `POST /events`
    Subscribe,
}

/// A request to open an event stream.
#[derive(Debug)]
pub struct Subscription {
    /// Topics, validated.
    pub topics: Vec<String>,
    /// Replay events after this id.
    pub last_event_id: Option<EventId>,
    /// CORS header lines for the stream's response head.
    pub cors_headers: String,
}

impl From<HttpError> for Action {
    fn from(error: HttpError) -> Action {
        let response = Response::text(error.status, error.reason);
        Action::Respond(match error.status {
            // RFC 9110 section 11.6.1: a 401 names the scheme the client must use.
            401 => response.header("WWW-Authenticate", "Bearer realm=\"sse-server\""),
            503 => response.header("Retry-After", 5),
            _ => response,
        })
    }
}

impl App {
    /// Decides what to do with a request, from its head.
    pub fn route(&self, head: &RequestHead, peer: IpAddr) -> Action {
        self.try_route(head, peer).unwrap_or_else(Action::from)
    }

    fn try_route(&self, head: &RequestHead, peer: IpAddr) -> Result<Action, HttpError> {
        let allow = match head.path.as_str() {
            "/" | "/healthz" | "/metrics" => "GET, HEAD, OPTIONS",
            "/events" => "GET, POST, OPTIONS",
            "/publish" => "POST, OPTIONS",
            _ => return Err(HttpError::new(404, "no such path")),
        };
        let cors = self.cors_headers(head)?;
        let response = match (head.path.as_str(), head.method) {
            (_, Method::Options) => {
                let mut response = Response::new(204, "text/plain", "").header("Allow", allow);
                if head.origin.is_some() {
                    response.headers.push_str(&cors);
                    response = response
                        .header("Access-Control-Allow-Methods", allow)
                        .header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                        .header("Access-Control-Max-Age", 600);
                }
                response
            }
            ("/", Method::Get | Method::Head) => {
                Response::new(200, "text/html; charset=utf-8", demo::PAGE)
            }
            ("/healthz", Method::Get | Method::Head) => Response::text(200, "ok"),
            ("/metrics", Method::Get | Method::Head) => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(self.broker.topic_count()),
            ),
            ("/events", Method::Get) => {
                self.authorize_subscribe(head)?;
                let query = form::parse_pairs(head.query.as_bytes())?;
                return Ok(Action::Subscribe(subscription(head, &query, &[], cors)?));
            }
            ("/events", Method::Post) => {
                self.authorize_subscribe(head)?;
                return Ok(Action::ReadBody(BodyUse::Subscribe));
            }
            ("/publish", Method::Post) => {
                self.authorize_publish(head, peer)?;
                return Ok(Action::ReadBody(BodyUse::Publish));
            }
            _ => {
                let response = Response::text(405, "method not allowed").header("Allow", allow);
                return Ok(Action::Respond(response));
            }
        };
        let mut response = response;
        if head.method != Method::Options {
            response.headers.push_str(&cors);
        }
        Ok(Action::Respond(response))
    }

    /// Completes a request whose body has been read.
    pub fn finish(&self, head: &RequestHead, body_use: BodyUse, body: &[u8]) -> Action {
        let result = match body_use {
            BodyUse::Publish => self.publish(head, body),
            BodyUse::Subscribe => self.subscribe_with_body(head, body),
        };
        result.unwrap_or_else(Action::from)
    }

    fn publish(&self, head: &RequestHead, body: &[u8]) -> Result<Action, HttpError> {
        let query = form::parse_pairs(head.query.as_bytes())?;
        let form_body;
        let (fields, data): (&[(String, String)], &str) = if head.content_type.as_deref()
            == Some("application/x-www-form-urlencoded")
        {
            form_body = form::parse_pairs(body)?;
            let data = form::values(&form_body, "data")
                .next()
                .ok_or(HttpError::bad_request(
                    "missing data field (for a raw body, send Content-Type: text/plain)",
                ))?;
            (&form_body, data)
        } else {
            let data = std::str::from_utf8(body)
                .map_err(|_| HttpError::bad_request("event data must be valid UTF-8"))?;
            (&[], data)
        };
        let topics: Vec<&str> = form::values(fields, "topic")
            .chain(form::values(&query, "topic"))
            .collect();
        let event_type = form::values(fields, "event")
            .chain(form::values(&query, "event"))
            .next()
            .filter(|kind| !kind.is_empty());
        let id = self
            .broker
            .publish(&topics, event_type, data)
            .map_err(|error| match error {
                PublishError::NoTopic => HttpError::bad_request("missing topic"),
                PublishError::Invalid(e) => HttpError::bad_request(e.reason()),
                PublishError::TooManyTopics => HttpError::new(503, "too many topics"),
            })?;
        let cors = self.cors_headers(head)?;
        let mut response = Response::text(200, &id.to_string());
        response.headers.push_str(&cors);
        Ok(Action::Respond(response))
    }

    fn subscribe_with_body(&self, head: &RequestHead, body: &[u8]) -> Result<Action, HttpError> {
        let query = form::parse_pairs(head.query.as_bytes())?;
        let fields = match head.content_type.as_deref() {
            Some("application/json") => json::fields(body)?,
            _ if head.body == BodyFraming::None => Vec::new(),
            _ => form::parse_pairs(body)?,
        };
        let cors = self.cors_headers(head)?;
        Ok(Action::Subscribe(subscription(
            head, &query, &fields, cors,
        )?))
    }

    fn authorize_publish(&self, head: &RequestHead, peer: IpAddr) -> Result<(), HttpError> {
        match &self.config.publish_token {
            Some(token) => check_bearer(head, token, None),
            None if peer.is_loopback() => Ok(()),
            None => Err(HttpError::new(
                403,
                "publishing is allowed from loopback only (no --publish-token set)",
            )),
        }
    }

    fn authorize_subscribe(&self, head: &RequestHead) -> Result<(), HttpError> {
        let Some(token) = &self.config.subscribe_token else {
            return Ok(());
        };
        let query = form::parse_pairs(head.query.as_bytes())?;
        let query_token = form::values(&query, "access_token").next();
        check_bearer(head, token, query_token)
    }

    /// CORS response headers for this request's `Origin`. A cross-origin request from an origin
    /// that is not allowed is refused with `403`, so no stream is opened for a page that may not
    /// read it.
    fn cors_headers(&self, head: &RequestHead) -> Result<String, HttpError> {
        let Some(origin) = head.origin.as_deref() else {
            return Ok(String::new());
        };
        let origins = &self.config.cors_origins;
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

/// Builds a subscription from the query string and body fields (topics from both).
fn subscription(
    head: &RequestHead,
    query: &[(String, String)],
    body: &[(String, String)],
    cors_headers: String,
) -> Result<Subscription, HttpError> {
    let mut topics: Vec<String> = Vec::new();
    for topic in form::values(body, "topic")
        .chain(form::values(body, "topics"))
        .chain(form::values(query, "topic"))
    {
        if !is_valid_name(topic) {
            return Err(HttpError::bad_request(
                "topic must be 1-128 bytes of UTF-8 without control characters",
            ));
        }
        if !topics.iter().any(|t| t == topic) {
            topics.push(topic.to_owned());
        }
    }
    if topics.len() > MAX_TOPICS_PER_SUBSCRIBER {
        return Err(HttpError::bad_request("at most 16 topics per subscription"));
    }
    if topics.is_empty() {
        topics.push("default".to_owned());
    }
    // The header wins over the query parameter; an id that is not ours (not a number) means
    // "no replay", as for a client coming from another server.
    let last_event_id = head
        .last_event_id
        .as_deref()
        .or_else(|| form::values(query, "lastEventId").next())
        .or_else(|| form::values(body, "lastEventId").next())
        .and_then(|id| id.trim().parse().ok());
    Ok(Subscription {
        topics,
        last_event_id,
        cors_headers,
    })
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
