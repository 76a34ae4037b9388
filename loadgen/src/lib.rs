//! sse-loadgen: a load generator that measures Server-Sent Events fan-out: publish-to-receipt
//! latency, loss, duplication and ordering per connection, the server's memory per connection
//! and CPU per delivery, and its own overhead. It speaks only HTTP/1.1 and SSE, as a browser
//! does, so it measures any SSE server configured by URLs.
//!
//! # Layout
//!
//! One line per module; a folder's files are indented under it. `main.rs` (the binary) only
//! parses the command line and calls [`cli::run`].
//!
//! - [`cli`]: the command tree, the exit statuses (`Exit`) and `run`, which dispatches.
//!   - `args`: each subcommand's options (the help text, `SSE_LOADGEN_*` twins) and
//!     `RunArgs::settings`.
//! - [`units`]: rates, IP ranges, steps, headers, payload sizes; counts, sizes, durations from
//!   `sse-common`.
//! - [`url`]: the small `http://` URL type everything is configured by.
//! - [`http`]: HTTP/1.1 response head (`httparse`) and body decoding (chunked, length, close).
//! - [`reply`]: a server's answer (status, content type, body excerpt) kept to quote it.
//! - [`sse`]: the incremental WHATWG event-stream parser.
//! - [`payload`]: the published event body (`run`, `seq`, scheduled time) and its parser.
//! - [`subscriber`]: many subscriber connections per thread; `mod.rs`: what the controller and
//!   the threads share (targets, plans, commands, progress counters).
//!   - `event_loop`: the thread's loop: poll, open on schedule, deadlines, read, close.
//!   - `commands`: the controller's commands carried out on the thread: phases, end of the ramp.
//!   - `connect`: the non-blocking connect (from a source address) and writing the request.
//!   - `connection`: one connection's state and what it owns.
//!   - `response`: a connection's bytes through the response head, body framing and parser.
//!   - `tracking`: which events of the phase each connection received; the phase's report.
//!   - `reconnect`: `--reconnect`: `retry` with jitter, `Last-Event-ID`, the next node.
//! - [`group`]: subscriber threads behind one interface (`SubscriberGroup`), in this process.
//! - [`worker`]: worker processes: the hidden `worker` subcommand and the parent side of its pipe.
//! - [`publisher`]: keep-alive POST publishers; `mod.rs`: the target, progress counters and one
//!   publishing connection, which both ways share.
//!   - `scheduled`: the events of a phase on a fixed schedule (latency from the scheduled time).
//!   - `closed_loop`: as fast as the server answers, for `--overload`.
//! - [`stats`]: per-phase results, HdrHistograms and their exact merge; `.hgrm` output.
//! - [`sysinfo`]: /proc readings: RSS, CPU, kernel socket memory, fd limit.
//! - [`server_probe`]: where the server's memory and CPU come from: `/proc` of its pids, or its
//!   Prometheus `/metrics` page (fetched and scraped).
//! - [`fanout`]: the `fanout` measurement.
//!   - `settings`: what a run is configured by, its validation, the requests it sends.
//!   - `run`: one run from start to end: ramp, memory readings, main phase, shutdown.
//!   - `phase`: the subscriber groups and publisher of a run, and one phase on them.
//!   - `progress`: the progress line on a terminal, or plain periodic lines otherwise.
//!   - `rate_search`: the search phases and the pure next-rate rule (`next_rate`).
//!   - `overload`: the overload phase (`--overload`): a closed-loop burst and its delivery.
//!   - `figures`: the report's figures computed from what a run measured.
//!   - `report`: `FanoutReport`, one JSON line per run, and whether it measured anything.
//!   - `print`: the human report.
//! - [`scale`]: the `scale` subcommand: fanout at several sizes.
//! - [`soak`]: the `soak` subcommand: mixed and abusive traffic for a bounded time, and a
//!   verdict.
//!   - `traffic`: each kind of client (good, busy and new-topic publishing, churn, stuck, slow).
//!   - `trend`: samples of the server, their trends after warm-up, the verdict, the plot.
//! - [`report`]: the `report` subcommand: summary.md and SVG plots from JSON lines.
//!   - `summary`: the markdown tables, and what the plots leave out and why.
//!   - `series`: what each plot draws (figures, one line per server, omissions).
//!   - `unit`: units and their short labels.
//!   - `axis`: linear or logarithmic axes and where their ticks go.
//!   - `palette`: the servers' colours.
//!   - `plot`: drawing one plot.
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
