//! What each request asks for: the router turns a request into an [`Action`] and performs
//! nothing. The event loop carries the action out (answers, reads a body, opens a stream, hands
//! a publish to the broker). Access (tokens, CORS) is checked once per request, here.

use std::net::IpAddr;
use std::sync::Arc;

use crate::access::{Access, Grant, Permission, Refusal};
use crate::broker::PublishRequest;
use crate::config::Config;
use crate::console;
use crate::feed::Feeds;
use crate::http::HttpError;
use crate::http::form;
use crate::http::request::{Method, RequestHead};
use crate::http::response::Response;
use crate::metrics::Metrics;
use crate::params::{self, Subscription};

/// Headers a cross-origin request may send (preflight answer).
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, Cache-Control, Accept";

/// What the router decides for a request.
#[derive(Debug)]
pub enum Action {
    /// Send this response.
    Respond(Response),
    /// Read the body first, then ask [`Router::finish`].
    ReadBody(PendingBody),
    /// Turn the connection into an event stream.
    Subscribe(Subscription),
    /// Hand this event to the broker, and answer with the id it assigns.
    Publish(Publish),
}

/// What a request body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// `POST /publish`
    Publish,
    /// `POST /events`
    Subscribe,
}

/// A request whose body is still to be read: what it is for, the CORS headers its answer
/// carries (computed once, with the head), and what its token allows.
#[derive(Debug)]
pub struct PendingBody {
    /// What the body is for.
    pub body_use: BodyUse,
    /// The topics the request may touch, checked once the body names them.
    pub grant: Grant,
    /// CORS header lines for the answer.
    pub cors_headers: String,
}

/// A publish to carry out.
#[derive(Debug)]
pub struct Publish {
    /// The event, checked.
    pub request: PublishRequest,
    /// CORS header lines for the `200`.
    pub cors_headers: String,
}

/// The response for a refused request: a plain-text reason, with the headers its status needs.
pub fn error_response(error: HttpError) -> Response {
    let response = Response::text(error.status, error.reason);
    match error.status {
        // RFC 9110 section 11.6.1: a 401 names the scheme the client must use.
        401 => response.header("WWW-Authenticate", "Bearer realm=\"sse-server\""),
        503 => response.header("Retry-After", 5),
        _ => response,
    }
}

/// The response for a refused request, a token refusal included: a JSON Web Token that did not
/// verify is answered as RFC 6750 section 3.1 says, so a client knows to fetch a new one.
pub fn refusal_response(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Http(error) => error_response(error),
        Refusal::InvalidToken(refusal) => Response::text(401, refusal.as_str())
            .header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
    }
}

impl From<HttpError> for Action {
    fn from(error: HttpError) -> Action {
        Action::Respond(error_response(error))
    }
}

impl From<Refusal> for Action {
    fn from(refusal: Refusal) -> Action {
        Action::Respond(refusal_response(refusal))
    }
}

/// The routing table and what it needs to decide: settings, access rules, counters to show.
pub struct Router {
    /// Settings.
    pub config: Config,
    /// Counters (for `GET /metrics`, and for the loops to count into).
    pub metrics: Arc<Metrics>,
    /// The loops' own figures, for `GET /metrics`.
    feeds: Feeds,
    access: Access,
}

impl Router {
    /// A router for `config`, showing `metrics` and the figures of the loops behind `feeds`.
    pub fn new(config: Config, metrics: Arc<Metrics>, feeds: Feeds) -> Router {
        Router {
            access: Access::new(&config),
            config,
            metrics,
            feeds,
        }
    }

    /// Decides what to do with a request, from its head.
    pub fn route(&self, head: &RequestHead, peer: IpAddr) -> Action {
        self.try_route(head, peer).unwrap_or_else(Action::from)
    }

    fn try_route(&self, head: &RequestHead, peer: IpAddr) -> Result<Action, Refusal> {
        let allow = match head.path.as_str() {
            "/" if !self.config.console => {
                return Err(HttpError::new(404, "no console here (--no-console)").into());
            }
            "/" | "/healthz" | "/metrics" => "GET, HEAD, OPTIONS",
            "/events" => "GET, POST, OPTIONS",
            "/publish" => "POST, OPTIONS",
            _ => return Err(HttpError::new(404, "no such path").into()),
        };
        let cors_headers = self.access.cors_headers(head)?;
        let response = match (head.path.as_str(), head.method) {
            (_, Method::Options) => {
                let mut response = Response::new(204, "text/plain", "").header("Allow", allow);
                if head.origin.is_some() {
                    response.headers.push_str(&cors_headers);
                    response = response
                        .header("Access-Control-Allow-Methods", allow)
                        .header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                        .header("Access-Control-Max-Age", 600);
                }
                return Ok(Action::Respond(response));
            }
            ("/", Method::Get | Method::Head) => {
                Response::new(200, "text/html; charset=utf-8", console::PAGE)
            }
            ("/healthz", Method::Get | Method::Head) if self.metrics.backplane_down() => {
                Response::text(503, "backplane down: Redis unreachable")
            }
            ("/healthz", Method::Get | Method::Head) => Response::text(200, "ok"),
            ("/metrics", Method::Get | Method::Head) => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(&self.feeds),
            ),
            ("/events", Method::Get) => {
                let query = form::parse_pairs(head.query.as_bytes())?;
                let token = form::values(&query, "access_token").next();
                let grant = self
                    .access
                    .authorize(head, peer, Permission::Subscribe, token)?;
                let subscription = params::subscription(head, &query, &[], cors_headers)?;
                return Ok(Action::Subscribe(granted(subscription, &grant)?));
            }
            ("/events", Method::Post) => {
                let grant = self.authorize_subscribe(head, peer)?;
                return Ok(Action::ReadBody(PendingBody {
                    body_use: BodyUse::Subscribe,
                    grant,
                    cors_headers,
                }));
            }
            ("/publish", Method::Post) => {
                let grant = self
                    .access
                    .authorize(head, peer, Permission::Publish, None)?;
                return Ok(Action::ReadBody(PendingBody {
                    body_use: BodyUse::Publish,
                    grant,
                    cors_headers,
                }));
            }
            _ => {
                let response = Response::text(405, "method not allowed").header("Allow", allow);
                return Ok(Action::Respond(response));
            }
        };
        let mut response = response;
        response.headers.push_str(&cors_headers);
        Ok(Action::Respond(response))
    }

    fn authorize_subscribe(&self, head: &RequestHead, peer: IpAddr) -> Result<Grant, Refusal> {
        if !self.access.reads_query_token() {
            return self
                .access
                .authorize(head, peer, Permission::Subscribe, None);
        }
        let query = form::parse_pairs(head.query.as_bytes())?;
        let token = form::values(&query, "access_token").next();
        self.access
            .authorize(head, peer, Permission::Subscribe, token)
    }

    /// Decides what to do with a request whose body has been read.
    pub fn finish(&self, head: &RequestHead, pending: PendingBody, body: &[u8]) -> Action {
        let grant = pending.grant;
        let result = match pending.body_use {
            BodyUse::Publish => params::publish_request(head, body).and_then(|request| {
                grant.check_topics(request.topics().iter().map(|topic| &**topic))?;
                Ok(Action::Publish(Publish {
                    request,
                    cors_headers: pending.cors_headers,
                }))
            }),
            BodyUse::Subscribe => params::subscription_with_body(head, body, pending.cors_headers)
                .and_then(|subscription| granted(subscription, &grant))
                .map(Action::Subscribe),
        };
        result.unwrap_or_else(Action::from)
    }
}

/// The subscription, if `grant` covers every topic of it, bounded by the grant's validity.
fn granted(mut subscription: Subscription, grant: &Grant) -> Result<Subscription, HttpError> {
    grant.check_topics(subscription.topics.iter().map(String::as_str))?;
    subscription.valid_until = grant.valid_until();
    Ok(subscription)
}
