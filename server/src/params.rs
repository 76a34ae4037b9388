//! The parameters of publish and subscribe requests, from the query string and the body.
//!
//! Publish: topics (`topic`, repeatable) and event type (`event`) from a form body or the query;
//! data from the form's `data` field or the raw body. Subscribe: topics (`topic`, `topics`) and
//! `lastEventId` from the query, a form body or a small JSON object; `Last-Event-ID` wins.

use std::time::SystemTime;

use crate::broker::{PublishError, PublishRequest};
use crate::console;
use crate::event::{EventId, is_valid_name};
use crate::fanout::MAX_TOPICS_PER_SUBSCRIBER;
use crate::http::HttpError;
use crate::http::request::{BodyFraming, RequestHead};
use crate::http::{form, json};

/// A request to open an event stream.
#[derive(Debug)]
pub struct Subscription {
    /// Topics, validated.
    pub topics: Vec<String>,
    /// Replay events after this id.
    pub last_event_id: Option<EventId>,
    /// CORS header lines for the stream's response head.
    pub cors_headers: String,
    /// The client asked (`gaps=1`) to be told in-band, with an `event: gap`, when a replay
    /// cannot deliver every event after its id (the `Sse-Replay` header always says it).
    pub gap_event: bool,
    /// When the stream must be closed because its token expires (`exp` plus the leeway);
    /// `None`: never. Set by the router from the request's grant.
    pub valid_until: Option<SystemTime>,
}

/// The `400`/`503` a refused publish is answered with.
pub fn publish_error(error: PublishError) -> HttpError {
    match error {
        // Not `default`, as a subscription without a topic is: a publish whose topic field was
        // lost or misspelt would reach every subscriber of `default` without a word.
        PublishError::NoTopic => HttpError::bad_request(
            "missing topic: name one (topic=NAME; topic=default reaches subscribers that named none)",
        ),
        PublishError::Invalid(e) => HttpError::bad_request(e.reason()),
        PublishError::TooManyTopics => HttpError::new(
            503,
            "too many live topics (--max-topics); a topic stops counting --topic-ttl after its last publish",
        ),
        PublishError::Unavailable => HttpError::new(503, "publishing is unavailable"),
        PublishError::Overloaded => HttpError::new(
            503,
            "the server is behind delivering events (--max-backlog); retry later",
        ),
    }
}

/// Reads a publish from the query string and the body.
pub fn publish_request(head: &RequestHead, body: &[u8]) -> Result<PublishRequest, HttpError> {
    let query = form::parse_pairs(head.query.as_bytes())?;
    let form_body;
    let (fields, data): (&[(String, String)], &str) =
        if head.content_type.as_deref() == Some("application/x-www-form-urlencoded") {
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
    if let Some(topic) = topics.iter().find(|t| console::is_reserved_topic(t)) {
        // Only the server writes its own topics: a client must not forge the console's figures.
        return Err(HttpError::new(
            403,
            if *topic == console::STATS_TOPIC {
                "topic $stats is the server's own (the console's figures); topics starting with $ cannot be published to"
            } else {
                "topics starting with $ are reserved for the server and cannot be published to"
            },
        ));
    }
    PublishRequest::new(&topics, event_type, data).map_err(publish_error)
}

/// Reads a subscription from the query string and an optional form or JSON body.
pub fn subscription_with_body(
    head: &RequestHead,
    body: &[u8],
    cors_headers: String,
) -> Result<Subscription, HttpError> {
    let query = form::parse_pairs(head.query.as_bytes())?;
    let fields = match head.content_type.as_deref() {
        Some("application/json") => json::fields(body)?,
        _ if head.body == BodyFraming::None => Vec::new(),
        _ => form::parse_pairs(body)?,
    };
    subscription(head, &query, &fields, cors_headers)
}

/// Builds a subscription from the query string and body fields (topics from both).
pub fn subscription(
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
    let gap_event = form::values(query, "gaps")
        .chain(form::values(body, "gaps"))
        .any(|value| matches!(value, "1" | "true" | "yes"));
    Ok(Subscription {
        topics,
        last_event_id,
        cors_headers,
        gap_event,
        valid_until: None,
    })
}
