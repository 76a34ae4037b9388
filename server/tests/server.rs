//! Black-box tests of `sse-server` over real sockets on `127.0.0.1:0`, written from the
//! specification: exact wire bytes, replay, fan-out, back-pressure, every refused input, HTTP/1.x
//! connection handling, resource use and shutdown.
//!
//! # Layout
//! - `util` (`tests/util/mod.rs`): servers in-process and as a child process, raw HTTP and SSE
//!   clients, deadlines.
//! - `streams`: subscribing, the stream preamble, wire form of events, topics, heartbeat, demo.
//! - `replay`: `Last-Event-ID` replay without gap or duplicate, history bounds, ids across a
//!   restart.
//! - `protocol`: keep-alive, pipelining, HTTP/1.0, chunked and `Expect` publishes, and every
//!   refused request with its status.
//! - `framing`: request smuggling shapes (CL+TE, duplicate CL, TE not chunked, bare LF,
//!   obs-fold), each with its status, and bodies refused from their announced size.
//! - `access`: publish and subscribe tokens, CORS.
//! - `limits`: `--max-connections` bounds streams; the bounded headroom that keeps publishes,
//!   health and metrics served at the cap; `413` naming its limit and flag.
//! - `backplane`: the Redis backplane with a real `redis-server`: several nodes in one order,
//!   replay on a node started later, Redis stopped and restarted, a node killed, `--reuse-port`.
//! - `backplane_outage`: one node cut off from Redis: the feed trimmed meanwhile (streams end,
//!   replay recovers), and a persistent Redis restarted meanwhile (nothing acknowledged lost).
//! - `backplane_replay`: replay from Redis on demand when a node's logs do not reach back far
//!   enough (evicted history, a forgotten topic), and a point Redis no longer holds told as a gap.
//! - `console`: the page at `/` and `--no-console`, the reserved `$stats` topic, figures produced
//!   only while watched.
//! - `jwt`: JSON Web Tokens per topic, made by PyJWT and `jose`: every `401` and `403`, the
//!   leeway, static tokens beside JWT, the key file, streams closed at expiry.
//! - `broker_seam`: a second `Broker` (a test double that answers and delivers late) drives a
//!   real server: replay and live join without gap or duplicate.
//! - `soundness`: topics that come and go, the history memory budget, the lag policy, fair
//!   passes, publish backpressure.
//! - `abuse`: body and descriptor limits, the open-descriptor figure, the abuse battery with a
//!   good subscriber served throughout.
//! - `startup`: `--listen` with host names, and the addresses it refuses.
//! - `readme`: the README's flags table against `sse-server --help` (variables, defaults).
//! - `listeners`: one listening socket per loop; connections spread over the loops.
//! - `load`: many subscribers, slow consumers, hang-ups, connection churn, metrics, shutdown.

mod util;

#[path = "server/abuse.rs"]
mod abuse;
#[path = "server/access.rs"]
mod access;
#[path = "server/backplane.rs"]
mod backplane;
#[path = "server/backplane_outage.rs"]
mod backplane_outage;
#[path = "server/backplane_replay.rs"]
mod backplane_replay;
#[path = "server/broker_seam.rs"]
mod broker_seam;
#[path = "server/console.rs"]
mod console;
#[path = "server/framing.rs"]
mod framing;
#[path = "server/jwt.rs"]
mod jwt;
#[path = "server/limits.rs"]
mod limits;
#[path = "server/listeners.rs"]
mod listeners;
#[path = "server/load.rs"]
mod load;
#[path = "server/protocol.rs"]
mod protocol;
#[path = "server/readme.rs"]
mod readme;
#[path = "server/replay.rs"]
mod replay;
#[path = "server/soundness.rs"]
mod soundness;
#[path = "server/startup.rs"]
mod startup;
#[path = "server/streams.rs"]
mod streams;
