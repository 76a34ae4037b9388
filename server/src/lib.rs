//! # sse-server
//!
//! A Server-Sent Events fan-out server on a hand-rolled `mio` event loop. Each published event
//! is encoded once into its wire bytes; every subscriber writes from that shared buffer.
//!
//! # Layout
//!
//! One line per module; a folder's files are indented under it. `main.rs` (the binary) only
//! parses the command line and runs the [`Server`].
//!
//! - [`server`]: start-up and shutdown: binds one `SO_REUSEPORT` listener per loop, raises the
//!   fd limit, starts the loops and the helper threads, waits for them.
//! - [`event_loop`]: one thread's `mio` loop; `mod.rs`: run, dispatch by token, ticks, close.
//!   - `accept`: accepting, the limits on sockets and streams and their `503`, pausing at the
//!     fd limit.
//!   - `exchange/mod.rs`: the request/response driver and the `Outcome` it hands the loop.
//!   - `exchange/answer.rs`: responses, publish answers and refusals (`408`, `413`).
//!   - `exchange/loop_side.rs`: the loop's half: carrying outcomes out, deadlines, lingering.
//!   - `opening`: subscribing, replay from the logs or from the broker, the stream's head.
//!   - `delivery`: taking the feed, fan-out passes, stream writes, heartbeats.
//!   - `passes`: the order of fan-out visits, fair between topics; the loop's backlog.
//!   - `backpressure`: publishes wait while any loop's backlog is over `--max-backlog`.
//!   - `drain`: graceful shutdown of one loop.
//! - [`connection`]: a connection's socket and state machine (exchanging, replaying, streaming,
//!   lingering).
//! - [`routes`]: what a request asks for, as an action value; performs nothing.
//! - [`access`]: who may publish and subscribe (tokens) and CORS, once a request; the start-up
//!   publish warning.
//!   - `jwt`: JSON Web Tokens naming the topics their holder may use.
//!   - `local`: publishing without a token only directly from this host.
//! - [`params`]: publish and subscribe parameters from query strings and bodies.
//! - [`broker`]: the [`Broker`] seam (ids, order, asynchronous publish answers).
//!   - `local`: the in-process [`LocalBroker`]: one lock orders publishes, delivered at once.
//!   - `live_topics`: the in-process broker's live topics, least recently published first.
//!   - `replay`: replay beyond the loops' logs, answered asynchronously.
//!   - `redis` (`redis.rs`): the Redis Streams backplane [`RedisBroker`] and its threads.
//!   - `redis/publisher`: the publisher thread: pipelined `EVALSHA` of `redis_script.lua`.
//!   - `redis/reader`: the feed reader: `XREAD BLOCK`, delivering to every loop in id order.
//!   - `redis/backfill`: the recent history of every live topic, read at start.
//!   - `redis/replayer`: replay from Redis on demand.
//!   - `redis/stream_info`: what `XINFO STREAM` says (first entry, trimmed after an id?).
//!   - `redis/entries`: stream entries and script replies read back into events and ids.
//! - [`feed`]: the delivery interface any broker pushes ordered events and answers into.
//! - [`fanout`]: per-loop topic logs and subscribers; `mod.rs`: `Topics`, retention, topic TTL.
//!   - `log`: one topic's log: shared events with byte offsets, what replay can promise.
//!   - `subscriber`: a subscriber's cursors (the id rule), vectored writes, lag.
//!   - `memory`: the `--history-memory` budget and what it evicts.
//!   - `tests`: the topic logs' and subscribers' tests.
//! - [`event`]: event ids and the one-time wire encoding of an event.
//! - [`http`]: HTTP/1.1, as much as an SSE server needs.
//!   - `request/mod.rs`: request heads, with the framing rules against smuggling.
//!   - `request/tests.rs`: the request-head tables (refused and accepted heads).
//!   - `body`: request bodies, `Content-Length` and chunked, bounded.
//!   - `form`: `application/x-www-form-urlencoded` decoding.
//!   - `json`: the small JSON object of a `POST /events` body.
//!   - `response`: a response written into one buffer.
//! - [`metrics`]: counters and the Prometheus text rendering.
//! - [`fd_sampler`]: the open-descriptor figure, counted by a thread of its own, never a loop.
//! - [`log`]: rate-limited warnings on stderr.
//! - [`console`]: the console page at `/` (`page.html`).
//!   - `stats`: the live figures it shows (topic `$stats`), sampled while someone watches.
//! - [`demo`]: the time source on topic `time`.
//! - [`config`]: the settings, with their defaults.
//! - [`cli`]: the command line that fills them (every flag has an `SSE_*` twin).
//! - [`sys`]: fd limit, socket options, signals, /proc figures.

#![deny(missing_docs)]

pub mod access;
pub mod broker;
pub mod cli;
pub mod config;
pub mod connection;
pub mod console;
pub mod demo;
pub mod event;
pub mod event_loop;
pub mod fanout;
pub mod fd_sampler;
pub mod feed;
pub mod http;
pub mod log;
pub mod metrics;
pub mod params;
pub mod routes;
pub mod server;
pub mod sys;

pub use broker::{Broker, LocalBroker, RedisBroker};
pub use config::Config;
pub use server::{Server, ServerError, ShutdownHandle};
