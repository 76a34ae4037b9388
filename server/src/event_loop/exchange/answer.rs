//! An exchange's answers: queuing a response and getting ready for the next request, answering
//! an awaited publish, and the refusals (`4xx`/`5xx` that close the connection, the `408` of a
//! late request, the `413` that names the body limit).
//!
//! Separate from the driver in `mod.rs`, which reads, parses and decides what comes next: this
//! file only says what goes on the wire and whether the connection stays open after it.

use std::time::Instant;

use super::{Exchange, Phase};
use crate::broker::PublishError;
use crate::event::EventId;
use crate::http::HttpError;
use crate::http::body::SUBSCRIBE_BODY_LIMIT;
use crate::http::response::Response;
use crate::params::publish_error;
use crate::routes::{BodyUse, Router, error_response};
use sse_common::format_size;

impl Exchange {
    /// Answers the awaited publish with the broker's result. False when this exchange awaits
    /// no publish with that serial (the answer is stale).
    pub fn complete_publish(
        &mut self,
        serial: u64,
        result: Result<EventId, PublishError>,
        router: &Router,
        stopping: bool,
    ) -> bool {
        match &self.phase {
            Phase::AwaitingBroker(awaiting) if awaiting.serial == serial => {}
            _ => return false,
        }
        let Phase::AwaitingBroker(awaiting) = std::mem::replace(&mut self.phase, Phase::Head)
        else {
            unreachable!("matched above");
        };
        let response = match result {
            Ok(id) => {
                let mut response = Response::text(200, &id.to_string());
                response.headers.push_str(&awaiting.cors_headers);
                response
            }
            Err(error) => error_response(publish_error(error)),
        };
        let keep_alive = awaiting.keep_alive && !stopping;
        self.answer(response, awaiting.minor_version, keep_alive, false, router);
        true
    }

    /// Queues a response and gets ready for the next request (or to close after it).
    pub(super) fn answer(
        &mut self,
        response: Response,
        minor_version: u8,
        keep_alive: bool,
        is_head: bool,
        router: &Router,
    ) {
        if response.status >= 400 {
            router.metrics.count_rejected(response.status);
        }
        response.write_to(&mut self.output, minor_version, keep_alive, is_head);
        self.served += 1;
        self.close_after_output = !keep_alive;
        self.deadline = Instant::now() + router.config.header_timeout;
    }

    /// Queues an error response and closes the connection after it.
    pub(super) fn respond_error(&mut self, error: HttpError, minor_version: u8, router: &Router) {
        self.refuse_with(
            Response::text(error.status, error.reason),
            minor_version,
            router,
        );
    }

    /// Queues the refusal of a request body: a `413` names the limit it passed and the flag
    /// that sets it; other errors (framing) are answered as they are.
    pub(super) fn respond_body_error(
        &mut self,
        error: HttpError,
        body_use: BodyUse,
        minor_version: u8,
        router: &Router,
    ) {
        if error.status == 413 {
            let response = body_too_large(body_use, router.config.max_body);
            self.refuse_with(response, minor_version, router);
        } else {
            self.respond_error(error, minor_version, router);
        }
    }

    /// Queues a refusal (a `4xx`/`5xx` response built by the loop, such as a stream over the
    /// limit) and closes the connection after it.
    pub fn refuse(&mut self, response: Response, router: &Router) {
        self.refuse_with(response, 1, router);
    }

    /// Queues `response`, counted as a refusal, and closes the connection after it.
    fn refuse_with(&mut self, response: Response, minor_version: u8, router: &Router) {
        router.metrics.count_rejected(response.status);
        response.write_to(&mut self.output, minor_version, false, false);
        self.phase = Phase::Head;
        self.close_after_output = true;
    }

    /// The request deadline passed. Returns true when the connection should just close (an
    /// idle keep-alive connection, or one already closing); otherwise a `408` is queued.
    pub fn on_deadline(&mut self, router: &Router) -> bool {
        let idle = self.served > 0 && self.input.is_empty() && matches!(self.phase, Phase::Head);
        if idle || self.close_after_output {
            return true;
        }
        self.respond_error(
            HttpError::new(408, "request not complete in time"),
            1,
            router,
        );
        false
    }
}

/// The most body bytes a request may carry: a publish `--max-body`; a subscription says a few
/// topics, so its body is held to [`SUBSCRIBE_BODY_LIMIT`] (or `--max-body`, if lower).
pub(super) fn body_limit(body_use: BodyUse, max_body: u64) -> u64 {
    match body_use {
        BodyUse::Publish => max_body,
        BodyUse::Subscribe => SUBSCRIBE_BODY_LIMIT.min(max_body),
    }
}

/// The `413` for a body over [`body_limit`], naming the limit, its size and what sets it:
/// `request body over --max-body (1 MiB)`, or for a subscription held to its own cap,
/// `subscribe body over 8 KiB (...)`.
fn body_too_large(body_use: BodyUse, max_body: u64) -> Response {
    let limit = body_limit(body_use, max_body);
    let reason = if limit < max_body {
        format!(
            "subscribe body over {} (the most a subscription of 16 topics needs; --max-body \
             does not raise it)",
            format_size(limit)
        )
    } else {
        format!("request body over --max-body ({})", format_size(limit))
    };
    Response::text(413, &reason)
}
