//! The axum comparison peer for the sse-fanout benchmarks.
//!
//! Usage: `sse-peer-axum [PORT [THREADS]]` (or env `PORT`, `THREADS`; defaults 8082 and all cores).
//!
//! - `GET /events?topic=T`: Server-Sent Events stream of topic `T` (default `default`), built
//!   from a `tokio::sync::broadcast::Receiver` wrapped in `BroadcastStream`, with axum's
//!   `KeepAlive` sending a comment every 15 s as our server does.
//! - `POST /publish?topic=T`: the raw body becomes one event's data; replies `200` with the
//!   number of receivers.
//!
//! A receiver that falls more than `CHANNEL_CAPACITY` events behind gets `Lagged` from the
//! channel; its stream then ends, the same "slow subscriber is dropped" policy as the others.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
    routing::{get, post},
};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// Events a subscriber may fall behind before it is dropped.
const CHANNEL_CAPACITY: usize = 1024;

/// One broadcast sender per topic, created on first use.
#[derive(Clone, Default)]
struct Topics {
    senders: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>,
}

impl Topics {
    fn sender(&self, topic: &str) -> broadcast::Sender<Arc<str>> {
        let mut senders = self.senders.lock().unwrap();
        senders
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}

/// The `?topic=` query of both endpoints.
#[derive(Deserialize)]
struct TopicQuery {
    topic: Option<String>,
}

impl TopicQuery {
    fn name(&self) -> &str {
        self.topic.as_deref().filter(|t| !t.is_empty()).unwrap_or("default")
    }
}

async fn subscribe(
    State(topics): State<Topics>,
    Query(query): Query<TopicQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = topics.sender(query.name()).subscribe();
    // A first comment so the client sees the stream open at once, as our server does.
    let hello = stream::once(async { Ok(Event::default().comment("ok")) });
    let events = BroadcastStream::new(receiver)
        // `Lagged` ends the stream: the subscriber was too slow.
        .take_while(|item| std::future::ready(item.is_ok()))
        .map(|item| Ok(Event::default().data(item.expect("filtered above").as_ref())));
    Sse::new(hello.chain(events)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}

async fn publish(
    State(topics): State<Topics>,
    Query(query): Query<TopicQuery>,
    body: Bytes,
) -> String {
    let data: Arc<str> = String::from_utf8_lossy(&body).into();
    // `send` fails only when nobody listens; that is zero deliveries, not an error.
    let receivers = topics.sender(query.name()).send(data).unwrap_or(0);
    format!("{receivers}\n")
}

fn arg_or_env(index: usize, env: &str) -> Option<String> {
    std::env::args()
        .nth(index)
        .or_else(|| std::env::var(env).ok())
        .filter(|v| !v.is_empty())
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg_or_env(1, "PORT").and_then(|p| p.parse().ok()).unwrap_or(8082);
    let threads: usize = arg_or_env(2, "THREADS")
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/events", get(subscribe))
            .route("/publish", post(publish))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(Topics::default());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("axum peer: listening on http://127.0.0.1:{port}, {threads} worker threads");
        // No graceful shutdown: SSE streams never end by themselves, so waiting for them would
        // hang; SIGINT/SIGTERM end the process at once.
        axum::serve(listener, app).await
    })
}
