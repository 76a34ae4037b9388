//! One subscriber connection: its socket, where it is, and the decoders and tracking it owns.

use mio::net::TcpStream;

use super::reconnect::Reconnection;
use super::tracking::Tracking;
use crate::http::{BodyDecoder, BodyMode};
use crate::sse::EventStreamParser;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    /// TCP connect in progress, or the request partly written (`written` bytes).
    Connecting {
        /// Request bytes written so far.
        written: usize,
    },
    /// Request sent, waiting for the response head.
    ReadingHead,
    /// 200 `text/event-stream`: events flow.
    Streaming,
    /// `--reconnect`: the stream ended; waiting for the reconnection timer.
    Waiting,
    /// Closed (failed, dropped or shut down); kept for the loss count of the phase.
    Closed,
}

impl ConnState {
    /// Whether the connection has not yet got its response head (it counts as failed, not
    /// dropped, when it closes).
    pub(super) fn is_opening(self) -> bool {
        matches!(self, ConnState::Connecting { .. } | ConnState::ReadingHead)
    }
}

/// One subscriber connection.
pub(super) struct Subscriber {
    /// The socket; `None` once closed, so the file descriptor is freed at once.
    pub(super) stream: Option<TcpStream>,
    /// Where the connection is.
    pub(super) state: ConnState,
    /// The response head bytes received so far (only until the head is complete).
    pub(super) head: Vec<u8>,
    /// Body framing (chunked, length, close).
    pub(super) body: BodyDecoder,
    /// The event-stream parser's state.
    pub(super) parser: EventStreamParser,
    /// Per-phase tracking of what arrived.
    pub(super) track: Tracking,
    /// The node (index into the target's nodes) this connection talks to.
    pub(super) node: usize,
    /// `--reconnect`: where a reconnection is, and what it will send.
    pub(super) reconnection: Reconnection,
}

impl Subscriber {
    /// A connection not (yet) connected: closed until a socket is registered.
    pub(super) fn unconnected() -> Self {
        Subscriber {
            stream: None,
            state: ConnState::Closed,
            head: Vec::new(),
            body: BodyDecoder::new(BodyMode::Close),
            parser: EventStreamParser::new(),
            track: Tracking::default(),
            node: 0,
            reconnection: Reconnection::default(),
        }
    }
}
