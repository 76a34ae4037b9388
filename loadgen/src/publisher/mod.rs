//! Publishers: keep-alive HTTP/1.1 connections that `POST` events, in two ways.
//!
//! - [`scheduled`]: the events of a phase on a fixed schedule (event `i` due at
//!   `start + i / rate`), each payload carrying its *scheduled* time, so a publisher that falls
//!   behind shows up as latency instead of hiding it (the coordinated-omission correction of
//!   wrk2).
//! - [`closed_loop`]: as fast as the server answers (`fanout --overload`): the next publish
//!   goes when the previous reply arrives, `K` in flight; with no schedule, each payload carries
//!   its *actual* send time.
//!
//! With several publish URLs (nodes), event `i` goes to node `i % N`; each publishing thread
//! keeps one connection per node. This file holds what both share: the target, the progress
//! counters and one publishing connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::failure::FailureKind;
use crate::http::{self, BodyDecoder};
use crate::reply::ServerReply;
use crate::url::HttpUrl;

pub mod closed_loop;
pub mod scheduled;

pub use closed_loop::{ClosedLoop, ClosedLoopOutcome, publish_closed_loop};
pub use scheduled::{PublishOutcome, publish_phase};

/// One server (node) events are published to.
#[derive(Debug, Clone)]
pub struct PublishNode {
    /// The publish URL.
    pub url: HttpUrl,
    /// Its resolved address.
    pub addr: SocketAddr,
}

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct PublishTarget {
    /// The servers, at least one: event `i` of a phase goes to node `i % n`.
    pub nodes: Vec<PublishNode>,
    /// Extra headers (`--publish-header`).
    pub headers: Vec<(String, String)>,
    /// The run id stamped into every payload.
    pub run_id: u64,
    /// Payload size in bytes.
    pub payload: usize,
    /// Number of publishing connections; 0: one per 1,000 events/s of the phase (at most 16).
    pub publishers: usize,
    /// Time allowed to connect, to send a publish and to get its answer (`--response-timeout`).
    pub response_timeout: Duration,
}

impl PublishTarget {
    /// One publishing connection per node (each connects on first use), and a body buffer big
    /// enough for a stamped payload: what every publishing thread starts with.
    fn thread_start(&self) -> (Vec<PublishConnection>, Vec<u8>) {
        let conns = self
            .nodes
            .iter()
            .cloned()
            .map(PublishConnection::new)
            .collect();
        (conns, Vec::with_capacity(self.payload + 64))
    }
}

/// Counters the publishers update while a phase runs, for the progress line.
#[derive(Debug, Default)]
pub struct PublishProgress {
    /// Publishes answered 2xx.
    pub published: AtomicU64,
    /// Publishes that failed.
    pub failed: AtomicU64,
}

/// A publish the server answered.
#[derive(Debug, Clone)]
struct Answer {
    /// The status.
    status: u16,
    /// The whole reply, kept only when the status is outside 2xx.
    refusal: Option<ServerReply>,
}

/// One keep-alive publishing connection.
struct PublishConnection {
    /// The server it posts to.
    node: PublishNode,
    /// The socket, reopened after errors and `Connection: close`.
    stream: Option<TcpStream>,
    /// Request bytes, reused.
    request: Vec<u8>,
    /// Response bytes.
    response: Vec<u8>,
}

impl PublishConnection {
    /// A connection to `node`, not yet open.
    fn new(node: PublishNode) -> Self {
        PublishConnection {
            node,
            stream: None,
            request: Vec::new(),
            response: Vec::new(),
        }
    }

    /// Posts `body`; returns the status or a failure kind.
    fn post(&mut self, target: &PublishTarget, body: &[u8]) -> Result<Answer, FailureKind> {
        self.request.clear();
        let _ = write!(
            self.request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            self.node.url.path_and_query,
            self.node.url.host_header(),
            body.len()
        );
        for (k, v) in &target.headers {
            let _ = write!(self.request, "{k}: {v}\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        // A kept-alive connection the server closed in the meantime fails on first use; one
        // retry on a fresh connection covers that without hiding a dead server.
        let reused = self.stream.is_some();
        match self.exchange(target) {
            Err(kind) if reused && kind != FailureKind::PublishTimeout => {
                self.stream = None;
                self.exchange(target)
            }
            r => r,
        }
    }

    fn exchange(&mut self, target: &PublishTarget) -> Result<Answer, FailureKind> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.node.addr, target.response_timeout)
                .map_err(|e| FailureKind::from_publish_io(&e))?;
            let _ = s.set_nodelay(true);
            // An answer that does not come within the timeout is a `publish_timeout`, so a
            // server that stops answering costs one timeout per event, not a fixed 10 s.
            let _ = s.set_read_timeout(Some(target.response_timeout));
            let _ = s.set_write_timeout(Some(target.response_timeout));
            self.stream = Some(s);
        }
        let result = self.exchange_on_stream();
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange_on_stream(&mut self) -> Result<Answer, FailureKind> {
        let stream = self.stream.as_mut().expect("connected");
        stream
            .write_all(&self.request)
            .map_err(|e| FailureKind::from_publish_io(&e))?;
        self.response.clear();
        let mut buf = [0u8; 4096];
        let (head, len) = loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| FailureKind::from_publish_io(&e))?;
            if n == 0 {
                return Err(FailureKind::PublishClosed);
            }
            self.response.extend_from_slice(&buf[..n]);
            match http::parse_head(&self.response) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(_) => return Err(FailureKind::PublishBadResponse),
            }
        };
        let refused = !(200..300).contains(&head.status);
        let mut body = BodyDecoder::new(head.body);
        body.feed(&self.response[len..], &mut |_| {})
            .map_err(|_| FailureKind::PublishBadResponse)?;
        // A refusal is quoted from the bytes that came with its head; the rest is drained.
        let refusal = refused.then(|| ServerReply::new(&head, &self.response[len..]));
        while !body.is_done() {
            let n = stream
                .read(&mut buf)
                .map_err(|e| FailureKind::from_publish_io(&e))?;
            if n == 0 {
                if head.body == http::BodyMode::Close {
                    break;
                }
                return Err(FailureKind::PublishClosed);
            }
            body.feed(&buf[..n], &mut |_| {})
                .map_err(|_| FailureKind::PublishBadResponse)?;
        }
        if head.closes() {
            self.stream = None;
        }
        Ok(Answer {
            status: head.status,
            refusal,
        })
    }
}
