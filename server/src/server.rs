//! Start-up and shutdown: binds the listeners (one per loop), raises the open-file limit,
//! starts one event loop per thread (and the demo source, the console's stats source and the
//! descriptor sampler), and waits for them to finish.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::access::Access;
use crate::broker::{Broker, LocalBroker, RedisBroker, RedisSetupError};
use crate::config::Config;
use crate::event_loop::{EventLoop, FEED, LINGERING_REFUSALS, SHORT_REQUEST_HEADROOM};
use crate::fd_sampler::FdSampler;
use crate::feed::{Feeds, LoopFeed};
use crate::metrics::Metrics;
use crate::routes::Router;
use crate::{console, demo, sys};

/// File descriptors kept back from `--max-connections` for listeners, epoll, wakers and files.
const RESERVED_FDS: u64 = 64;

/// Descriptors the process may hold beyond its `--max-connections` streams: its own
/// ([`RESERVED_FDS`]), the sockets of short requests ([`SHORT_REQUEST_HEADROOM`]) and refusals
/// left to linger ([`LINGERING_REFUSALS`]). The default cap is the fd limit minus these.
const DESCRIPTORS_BEYOND_STREAMS: u64 = RESERVED_FDS + SHORT_REQUEST_HEADROOM + LINGERING_REFUSALS;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// Creating the event loops failed.
    #[error("cannot start the event loops: {0}")]
    Setup(#[source] io::Error),
    /// The backplane could not be set up (`--redis`).
    #[error(transparent)]
    Backplane(#[from] RedisSetupError),
    /// An event loop failed.
    #[error("event loop failed: {0}")]
    Loop(#[source] io::Error),
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    loops: Vec<EventLoop>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    feeds: Feeds,
    broker: Arc<dyn Broker>,
    /// The counters, for the console's stats source.
    metrics: Arc<Metrics>,
    config: Config,
    fd_limit: u64,
    max_connections: u64,
    threads: usize,
}

/// Asks a running server to shut down gracefully. Cheap to clone and send to other threads.
#[derive(Clone)]
pub struct ShutdownHandle {
    stop: Arc<AtomicBool>,
    feeds: Feeds,
}

impl ShutdownHandle {
    /// Stops accepting, closes streams spread over `drain`, then [`Server::run`] returns.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.feeds.wake_all();
    }
}

impl Server {
    /// Binds the listening socket and prepares the event loops (nothing runs until `run`),
    /// with the Redis backplane when `config.redis` names one, else the in-process broker.
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        let broker: Arc<dyn Broker> = match &config.redis {
            Some(url) => Arc::new(RedisBroker::new(url, &config)?),
            None => Arc::new(LocalBroker::new(config.max_topics, config.topic_ttl)),
        };
        Server::bind_with_broker(config, broker)
    }

    /// Like [`Server::bind`], publishing through `broker` (a backplane, or a test double).
    /// The server attaches the broker to its loops.
    pub fn bind_with_broker(
        config: Config,
        broker: Arc<dyn Broker>,
    ) -> Result<Server, ServerError> {
        let fd_limit = sys::raise_fd_limit().map_err(ServerError::Setup)?;
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        let max_connections = config.max_connections.map_or(
            fd_limit.saturating_sub(DESCRIPTORS_BEYOND_STREAMS).max(1),
            |n| n as u64,
        );
        // One listening socket per loop: the kernel spreads connections over the loops.
        let listeners =
            sys::listen_per_loop(config.listen, threads, config.reuse_port).map_err(|source| {
                ServerError::Bind {
                    addr: config.listen,
                    source,
                }
            })?;
        let setup = |e| ServerError::Setup(e);
        let local_addr = listeners[0].local_addr().map_err(setup)?;

        // One descriptor held back to answer 503 when the process runs out of them.
        crate::event_loop::keep_reserve_descriptor();
        let mut polls = Vec::with_capacity(threads);
        let mut loop_feeds = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(setup)?;
            let waker = Waker::new(poll.registry(), FEED).map_err(setup)?;
            loop_feeds.push(Arc::new(LoopFeed::new(waker)));
            polls.push(poll);
        }
        let feeds = Feeds::new(loop_feeds.clone());
        let metrics = Arc::new(Metrics::default());
        metrics
            .history_memory_budget
            .store(config.history_memory, Ordering::Relaxed);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        metrics.start_time_micros.store(started, Ordering::Relaxed);
        broker.attach(feeds.clone(), metrics.clone());
        let router = Arc::new(Router::new(config.clone(), metrics.clone(), feeds.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut loops = Vec::with_capacity(threads);
        for ((poll, feed), listener) in polls.into_iter().zip(loop_feeds).zip(listeners) {
            listener.set_nonblocking(true).map_err(setup)?;
            let listener = mio::net::TcpListener::from_std(listener);
            loops.push(
                EventLoop::new(
                    poll,
                    listener,
                    feed,
                    feeds.clone(),
                    router.clone(),
                    broker.clone(),
                    max_connections,
                    stop.clone(),
                )
                .map_err(setup)?,
            );
        }
        Ok(Server {
            loops,
            local_addr,
            stop,
            feeds,
            broker,
            metrics,
            config,
            fd_limit,
            max_connections,
            threads,
        })
    }

    /// The address the server listens on (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to shut the server down from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
            feeds: self.feeds.clone(),
        }
    }

    /// The broker, to publish from the same process.
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }

    /// The one-line start-up summary: address, threads, fd limit, max connections, publishing.
    pub fn startup_line(&self) -> String {
        format!(
            "sse-server: listening on http://{} threads={} fd_limit={} max_connections={} short_request_headroom={} {} history_memory={}{}{}",
            self.local_addr,
            self.threads,
            self.fd_limit,
            self.max_connections,
            SHORT_REQUEST_HEADROOM,
            Access::new(&self.config).publish_policy(),
            format_size(self.config.history_memory),
            if self.config.reuse_port {
                " reuse_port"
            } else {
                ""
            },
            self.config
                .redis
                .as_deref()
                .map_or(String::new(), |url| format!(
                    " backplane={}",
                    redact_url(url)
                ))
        )
    }

    /// Warnings for the start-up output, one line each: publishing without a token while
    /// listening beyond loopback ([`Access::exposure_warning`]), and a `--max-connections` the
    /// open-file limit cannot hold.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = Access::new(&self.config)
            .exposure_warning(self.local_addr)
            .into_iter()
            .collect();
        warnings.extend(fd_limit_warning(self.config.max_connections, self.fd_limit));
        warnings
    }

    /// Runs the event loops (and the demo and stats sources) until shutdown; returns when all
    /// are done.
    pub fn run(self) -> Result<(), ServerError> {
        // Counting descriptors may walk /proc/self/fd: its own thread does it, never a loop.
        let fd_sampler = FdSampler::start(self.metrics.clone()).map_err(ServerError::Setup)?;
        // Started before the loops accept anything: its memory baseline is the idle server's.
        let stats = if self.config.console {
            let source = console::StatsSource::start(self.broker.clone(), self.metrics.clone());
            Some(source.map_err(ServerError::Setup)?)
        } else {
            None
        };
        let demo = (!self.config.demo_interval.is_zero()).then(|| {
            let broker = self.broker.clone();
            let interval = self.config.demo_interval;
            let stop = Arc::new(AtomicBool::new(false));
            let thread_stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name("demo-source".into())
                .spawn(move || demo::run_time_source(broker, interval, thread_stop));
            (stop, thread)
        });
        let threads: Vec<JoinHandle<io::Result<()>>> = self
            .loops
            .into_iter()
            .enumerate()
            .map(|(index, event_loop)| {
                std::thread::Builder::new()
                    .name(format!("event-loop-{index}"))
                    .spawn(move || event_loop.run())
                    .map_err(ServerError::Setup)
            })
            .collect::<Result<_, _>>()?;
        let mut result = Ok(());
        for thread in threads {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(ServerError::Loop(e)),
                Err(_) => result = Err(ServerError::Loop(io::Error::other("event loop panicked"))),
            }
            // One loop ending (error or shutdown) ends them all.
            self.stop.store(true, Ordering::Relaxed);
            self.feeds.wake_all();
        }
        drop(stats);
        drop(fd_sampler);
        if let Some((stop, thread)) = demo {
            stop.store(true, Ordering::Relaxed);
            if let Ok(thread) = thread {
                let _ = thread.join();
            }
        }
        result
    }
}

/// A URL with any password hidden: `redis://:secret@host` becomes `redis://***@host`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A warning when `--max-connections` asks for more streams than the open-file limit holds
/// (beyond streams, the process keeps [`DESCRIPTORS_BEYOND_STREAMS`] descriptors: its own, the
/// headroom for short requests, lingering refusals).
fn fd_limit_warning(asked: Option<usize>, fd_limit: u64) -> Option<String> {
    let asked = asked? as u64;
    let fits = fd_limit.saturating_sub(DESCRIPTORS_BEYOND_STREAMS);
    (asked > fits).then(|| {
        format!(
            "sse-server: warning: --max-connections {asked} is more than the open-file limit \
             allows (fd_limit={fd_limit}: about {fits} streams, keeping \
             {DESCRIPTORS_BEYOND_STREAMS} descriptors for short requests, refusals and the \
             server's own files); past that, new connections get 503. Raise the limit \
             (ulimit -n, or LimitNOFILE= in the systemd unit)"
        )
    })
}

/// `256MiB`, `64KiB`, `1000B`: the largest binary unit that divides the size.
fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords in a `--redis` URL never reach the start-up line.
    #[test]
    fn redacts_urls() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@host:1/0", "redis://***@host:1/0"),
            ("redis://user:p@ss@host", "redis://***@host"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    /// A cap the fd limit cannot hold is warned about at start; one it can hold is not. The
    /// headroom for short requests and lingering refusals counts: 300 descriptors hold 108
    /// streams, not 236.
    #[test]
    fn warns_when_max_connections_exceeds_the_fd_limit() {
        let warning = fd_limit_warning(Some(1000), 300).expect("a warning");
        assert!(warning.contains("--max-connections 1000"), "{warning}");
        assert!(
            warning.contains("fd_limit=300: about 108 streams, keeping 192 descriptors"),
            "{warning}"
        );
        assert!(fd_limit_warning(Some(200), 300).is_some());
        assert_eq!(fd_limit_warning(Some(108), 300), None);
        assert_eq!(fd_limit_warning(None, 300), None);
    }

    #[test]
    fn formats_sizes() {
        for (bytes, text) in [
            (256 << 20, "256MiB"),
            (64 << 10, "64KiB"),
            (1000, "1000B"),
            (0, "0B"),
        ] {
            assert_eq!(format_size(bytes), text);
        }
    }
}
