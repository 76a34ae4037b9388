//! The kinds of failure a run counts instead of aborting: one `Copy` enum, named in the report
//! by [`FailureKind::as_str`].
//!
//! The names (`connect_refused`, `status_500`, `publish_status_400`, ...) are part of the JSON
//! output format; they cross the worker pipe as those names too.

use std::fmt;
use std::io;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares [`CountedStatus`] from `Variant = code` pairs, with its names and lookup.
macro_rules! counted_statuses {
    ($($variant:ident = $code:literal),* $(,)?) => {
        /// An HTTP status a failure is counted under. The statuses servers commonly send have
        /// their own kind; any other is [`CountedStatus::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CountedStatus {
            $(
                #[doc = concat!("Status ", stringify!($code), ".")]
                $variant,
            )*
            /// Any status without a kind of its own.
            Other,
        }

        impl CountedStatus {
            /// Every status with its own kind, then [`CountedStatus::Other`].
            pub const ALL: &[CountedStatus] = &[$(CountedStatus::$variant,)* CountedStatus::Other];

            /// The kind `code` is counted under.
            pub fn from_code(code: u16) -> Self {
                match code {
                    $($code => CountedStatus::$variant,)*
                    _ => CountedStatus::Other,
                }
            }

            /// `status_500`, or `status_other`: a subscribe request's status.
            fn subscribe_name(self) -> &'static str {
                match self {
                    $(CountedStatus::$variant => concat!("status_", stringify!($code)),)*
                    CountedStatus::Other => "status_other",
                }
            }

            /// `publish_status_500`, or `publish_status_other`: a publish request's status.
            fn publish_name(self) -> &'static str {
                match self {
                    $(CountedStatus::$variant => concat!("publish_status_", stringify!($code)),)*
                    CountedStatus::Other => "publish_status_other",
                }
            }
        }
    };
}

counted_statuses!(
    Ok200 = 200,
    NoContent204 = 204,
    MovedPermanently301 = 301,
    Found302 = 302,
    BadRequest400 = 400,
    Unauthorized401 = 401,
    Forbidden403 = 403,
    NotFound404 = 404,
    MethodNotAllowed405 = 405,
    RequestTimeout408 = 408,
    ContentTooLarge413 = 413,
    TooManyRequests429 = 429,
    InternalServerError500 = 500,
    BadGateway502 = 502,
    ServiceUnavailable503 = 503,
    GatewayTimeout504 = 504,
);

/// Why one connection, request or delivery failed. Counted by kind in
/// [`ErrorCounts`](crate::stats::ErrorCounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The server refused the TCP connection.
    ConnectRefused,
    /// No local port was free for the source address (`EADDRNOTAVAIL`).
    NoLocalPort,
    /// This process ran out of file descriptors.
    TooManyOpenFiles,
    /// The TCP connection timed out.
    TcpTimeout,
    /// The server reset the connection.
    ConnectionReset,
    /// Writing to a connection the server had closed.
    BrokenPipe,
    /// No route to the server.
    Unreachable,
    /// Any other I/O error.
    IoError,
    /// No complete response head within `--response-timeout`.
    ResponseTimeout,
    /// Still connecting when the ramp ended.
    RampTimeout,
    /// The server closed a stream that was open.
    ClosedByServer,
    /// The server closed the connection before a complete response head.
    ClosedBeforeResponse,
    /// A 200 response that is not `text/event-stream`.
    BadContentType,
    /// A response head that is not HTTP/1.1, too large, or with a bad `Content-Length`.
    BadResponseHead,
    /// A chunked body with a bad chunk size or chunk end.
    BadChunkedBody,
    /// A subscribe request answered with a status other than 200.
    Status(CountedStatus),
    /// A publish got no answer within the timeout.
    PublishTimeout,
    /// The server refused the publishing connection.
    PublishConnectRefused,
    /// The server reset the publishing connection.
    PublishConnectionReset,
    /// Any other I/O error while publishing.
    PublishIoError,
    /// The server closed the publishing connection before a complete answer.
    PublishClosed,
    /// The publish answer is not HTTP/1.1.
    PublishBadResponse,
    /// A publish answered with a status outside 2xx.
    PublishStatus(CountedStatus),
}

/// The kinds without a status, in declaration order.
const PLAIN_KINDS: &[FailureKind] = &[
    FailureKind::ConnectRefused,
    FailureKind::NoLocalPort,
    FailureKind::TooManyOpenFiles,
    FailureKind::TcpTimeout,
    FailureKind::ConnectionReset,
    FailureKind::BrokenPipe,
    FailureKind::Unreachable,
    FailureKind::IoError,
    FailureKind::ResponseTimeout,
    FailureKind::RampTimeout,
    FailureKind::ClosedByServer,
    FailureKind::ClosedBeforeResponse,
    FailureKind::BadContentType,
    FailureKind::BadResponseHead,
    FailureKind::BadChunkedBody,
    FailureKind::PublishTimeout,
    FailureKind::PublishConnectRefused,
    FailureKind::PublishConnectionReset,
    FailureKind::PublishIoError,
    FailureKind::PublishClosed,
    FailureKind::PublishBadResponse,
];

impl FailureKind {
    /// The kind's name in reports and JSON: `connect_refused`, `status_500`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::NoLocalPort => "no_local_port",
            FailureKind::TooManyOpenFiles => "too_many_open_files",
            FailureKind::TcpTimeout => "tcp_timeout",
            FailureKind::ConnectionReset => "connection_reset",
            FailureKind::BrokenPipe => "broken_pipe",
            FailureKind::Unreachable => "unreachable",
            FailureKind::IoError => "io_error",
            FailureKind::ResponseTimeout => "response_timeout",
            FailureKind::RampTimeout => "ramp_timeout",
            FailureKind::ClosedByServer => "closed_by_server",
            FailureKind::ClosedBeforeResponse => "closed_before_response",
            FailureKind::BadContentType => "bad_content_type",
            FailureKind::BadResponseHead => "bad_response_head",
            FailureKind::BadChunkedBody => "bad_chunked_body",
            FailureKind::Status(s) => s.subscribe_name(),
            FailureKind::PublishTimeout => "publish_timeout",
            FailureKind::PublishConnectRefused => "publish_connect_refused",
            FailureKind::PublishConnectionReset => "publish_connection_reset",
            FailureKind::PublishIoError => "publish_io_error",
            FailureKind::PublishClosed => "publish_closed",
            FailureKind::PublishBadResponse => "publish_bad_response",
            FailureKind::PublishStatus(s) => s.publish_name(),
        }
    }

    /// Every kind: the plain ones, then each status for subscribing and for publishing.
    pub fn all() -> impl Iterator<Item = FailureKind> {
        let statuses = CountedStatus::ALL.iter().copied();
        PLAIN_KINDS
            .iter()
            .copied()
            .chain(statuses.clone().map(FailureKind::Status))
            .chain(statuses.map(FailureKind::PublishStatus))
    }

    /// The kind named `name` (the inverse of [`FailureKind::as_str`]).
    pub fn from_name(name: &str) -> Option<FailureKind> {
        FailureKind::all().find(|k| k.as_str() == name)
    }

    /// The kind a subscribe response with `status` is counted under.
    pub fn status(status: u16) -> FailureKind {
        FailureKind::Status(CountedStatus::from_code(status))
    }

    /// The kind a publish answered with `status` is counted under.
    pub fn publish_status(status: u16) -> FailureKind {
        FailureKind::PublishStatus(CountedStatus::from_code(status))
    }

    /// The kind of an I/O error on a subscriber connection.
    pub fn from_io(e: &io::Error) -> FailureKind {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => return FailureKind::ConnectRefused,
            Some(libc::EADDRNOTAVAIL) => return FailureKind::NoLocalPort,
            Some(libc::EMFILE) | Some(libc::ENFILE) => return FailureKind::TooManyOpenFiles,
            Some(libc::ETIMEDOUT) => return FailureKind::TcpTimeout,
            Some(libc::ECONNRESET) => return FailureKind::ConnectionReset,
            Some(libc::EPIPE) => return FailureKind::BrokenPipe,
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => return FailureKind::Unreachable,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => FailureKind::ConnectRefused,
            io::ErrorKind::ConnectionReset => FailureKind::ConnectionReset,
            io::ErrorKind::TimedOut => FailureKind::TcpTimeout,
            _ => FailureKind::IoError,
        }
    }

    /// The kind of an I/O error on a publishing connection. A read timeout is a publish that
    /// got no answer in time.
    pub fn from_publish_io(e: &io::Error) -> FailureKind {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return FailureKind::PublishTimeout;
        }
        match FailureKind::from_io(e) {
            FailureKind::ConnectRefused => FailureKind::PublishConnectRefused,
            FailureKind::ConnectionReset => FailureKind::PublishConnectionReset,
            _ => FailureKind::PublishIoError,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind crosses the worker pipe as its name.
impl Serialize for FailureKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FailureKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        FailureKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown failure kind {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has its own name, and the name reads back as the kind.
    #[test]
    fn names_are_distinct_and_read_back() {
        let mut names = std::collections::BTreeSet::new();
        for kind in FailureKind::all() {
            assert!(names.insert(kind.as_str()), "{kind:?} shares its name");
            assert_eq!(FailureKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(FailureKind::from_name("no_such_kind"), None);
    }

    /// The names are the report's format: a table of kinds and the name each must keep.
    #[test]
    fn names_keep_the_report_format() {
        let table: &[(FailureKind, &str)] = &[
            (FailureKind::ConnectRefused, "connect_refused"),
            (FailureKind::ResponseTimeout, "response_timeout"),
            (FailureKind::RampTimeout, "ramp_timeout"),
            (FailureKind::ClosedByServer, "closed_by_server"),
            (FailureKind::BadContentType, "bad_content_type"),
            (FailureKind::BadResponseHead, "bad_response_head"),
            (FailureKind::BadChunkedBody, "bad_chunked_body"),
            (FailureKind::status(500), "status_500"),
            (FailureKind::status(418), "status_other"),
            (FailureKind::publish_status(400), "publish_status_400"),
            (FailureKind::publish_status(599), "publish_status_other"),
            (FailureKind::PublishTimeout, "publish_timeout"),
        ];
        for (kind, name) in table {
            assert_eq!(kind.as_str(), *name);
        }
    }

    /// I/O errors map to the same kinds as before, on both sides.
    #[test]
    fn io_errors_by_kind() {
        let os = io::Error::from_raw_os_error;
        let table: &[(io::Error, FailureKind, FailureKind)] = &[
            (
                os(libc::ECONNREFUSED),
                FailureKind::ConnectRefused,
                FailureKind::PublishConnectRefused,
            ),
            (
                os(libc::ECONNRESET),
                FailureKind::ConnectionReset,
                FailureKind::PublishConnectionReset,
            ),
            (
                os(libc::EMFILE),
                FailureKind::TooManyOpenFiles,
                FailureKind::PublishIoError,
            ),
            (
                io::Error::from(io::ErrorKind::WouldBlock),
                FailureKind::IoError,
                FailureKind::PublishTimeout,
            ),
        ];
        for (e, subscribe, publish) in table {
            assert_eq!(FailureKind::from_io(e), *subscribe, "{e}");
            assert_eq!(FailureKind::from_publish_io(e), *publish, "{e}");
        }
    }
}
