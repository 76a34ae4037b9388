//! # sse-server
//!
//! A Server-Sent Events fan-out server on a hand-rolled `mio` event loop. Each published event
//! is encoded once into its wire bytes; every subscriber writes from that shared buffer.
//!
//! # Layout
//!
//! - [`server`]: start-up and shutdown: binds one listener per loop, raises the fd limit, runs
//!   the loops.
//! - [`event_loop`]: one thread's `mio` loop, by room: dispatch and timers, `accept`,
//!   `exchange` (the request/response driver), `delivery` (feed, fan-out passes), `drain`.
//! - [`connection`]: a connection's state machine (exchanging requests, streaming, lingering).
//! - [`routes`]: what a request asks for, as an action value; performs nothing.
//! - [`access`]: who may publish and subscribe (tokens; `jwt`: JSON Web Tokens naming topics;
//!   `local`: publishing without a token only directly from this host) and CORS, once a
//!   request; the start-up publish warning.
//! - [`params`]: publish and subscribe parameters from query strings and bodies.
//! - [`broker`]: the [`Broker`] seam (ids, order, asynchronous publish and replay answers), the
//!   in-process [`LocalBroker`] (`broker/live_topics`: its live topics, least recently published
//!   first), and the Redis Streams backplane [`RedisBroker`] (`broker/redis*`: publisher thread
//!   and script, feed reader, backfill, replay from Redis on demand).
//! - [`feed`]: the delivery interface any broker pushes ordered events and answers into.
//! - [`fanout`]: per-loop topic logs, subscriber cursors (id rule), vectored writes, lag policy.
//! - [`event`]: event ids and the one-time wire encoding of an event.
//! - [`http`]: request heads, bodies (length and chunked), forms, responses.
//! - [`metrics`]: counters and the Prometheus text rendering.
//! - [`fd_sampler`]: the open-descriptor figure, counted by a thread of its own, never a loop.
//! - [`log`]: rate-limited warnings on stderr.
//! - [`console`]: the console page at `/`, and the live figures it shows (topic `$stats`).
//! - [`demo`]: the time source on topic `time`.
//! - [`config`] and [`cli`]: settings, and the command line that fills them.
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
