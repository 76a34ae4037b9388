//! sse-loadgen: a load generator that measures Server-Sent Events fan-out: publish-to-receipt
//! latency, loss, duplication and ordering per connection, the server's memory per connection
//! and CPU per delivery, and its own overhead. It speaks only HTTP/1.1 and SSE, as a browser
//! does, so it measures any SSE server configured by URLs.
//!
//! # Layout
//! - [`cli`]: clap definitions (the help text), the exit statuses (`Exit`) and `run`.
//! - [`units`]: rates, IP ranges, steps, headers, payload sizes; counts, sizes, durations from
//!   `sse-common`.
//! - [`url`]: the small `http://` URL type everything is configured by.
//! - [`http`]: HTTP/1.1 response head (`httparse`) and body decoding (chunked, length, close).
//! - [`reply`]: a server's answer (status, content type, body excerpt) kept to quote it.
//! - [`sse`]: the incremental WHATWG event-stream parser.
//! - [`payload`]: the published event body (`run`, `seq`, scheduled time) and its parser.
//! - [`subscriber`]: many subscriber connections per thread: `event_loop`, `connect`,
//!   `connection`, `response` (head, body, events), `tracking` (what each received) and
//!   `reconnect` (`--reconnect`: `retry` with jitter, `Last-Event-ID`, the next node).
//! - [`group`]: subscriber threads behind one interface (`SubscriberGroup`), in this process.
//! - [`worker`]: worker processes: the hidden `worker` subcommand and the parent side of its pipe.
//! - [`publisher`]: keep-alive POST publishers: on a fixed schedule (`scheduled`), or as fast
//!   as the server answers (`closed_loop`, for `--overload`).
//! - [`stats`]: per-phase results, HdrHistograms and their exact merge; `.hgrm` output.
//! - [`sysinfo`]: /proc readings: RSS, CPU, kernel socket memory, fd limit.
//! - [`server_probe`]: where the server's memory and CPU come from: `/proc` of its pids, or its
//!   Prometheus `/metrics` page (fetched and scraped).
//! - [`fanout`]: the `fanout` measurement: `settings`, `run` (ramp, main phase), `phase`
//!   (groups, publish, drain), `progress`, `rate_search` (pure `next_rate`), `overload` (the
//!   closed-loop burst), `report`, `figures`, `print`.
//! - [`scale`]: the `scale` subcommand: fanout at several sizes.
//! - [`soak`]: the `soak` subcommand: mixed and abusive traffic for a bounded time, samples of
//!   the server, trends after warm-up and a verdict (`traffic`, `trend`).
//! - [`report`]: the `report` subcommand: summary.md and SVG plots from JSON lines (`summary`,
//!   `series`, `unit`, `axis`, `palette`, `plot`).
//! - [`watch`]: the `watch` debugging client.
//! - [`failure`]: the kinds of failure a run counts (`FailureKind`) and their report names.
//! - [`error`]: the crate's error type.
#![deny(missing_docs)]

pub mod cli;
pub mod error;
pub mod failure;
pub mod fanout;
pub mod group;
pub mod http;
pub mod payload;
pub mod publisher;
pub mod reply;
pub mod report;
pub mod scale;
pub mod server_probe;
pub mod soak;
pub mod sse;
pub mod stats;
pub mod subscriber;
pub mod sysinfo;
pub mod units;
pub mod url;
pub mod watch;
pub mod worker;
