//! The crate's error type: everything that makes a run impossible (as opposed to the failures
//! a run counts by kind and reports).

use std::io;

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL given on the command line is not a usable `http://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Settings that cannot describe a run (zero connections, rate 0, ...).
    #[error("invalid settings: {0}")]
    Config(String),
    /// The server could not be reached at all.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The server answered with a status other than 200.
    #[error("server replied {status} {reason}: {excerpt:?}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The beginning of the body, lossily decoded.
        excerpt: String,
    },
    /// The server answered 200 with a content type other than `text/event-stream`.
    #[error("content type is {0:?}, not text/event-stream")]
    ContentType(String),
    /// The server's bytes are not HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    Http(#[from] crate::http::HttpError),
    /// An I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A JSON document could not be read or written.
    #[error("{context}")]
    Json {
        /// What was being read or written.
        context: String,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A run completed but measured nothing (no subscriber connected, or every publish
    /// failed); says why and quotes the server.
    #[error("nothing was measured: {0}")]
    NothingMeasured(String),
    /// The inputs of `report` hold no fanout report: there is nothing to summarize or plot.
    #[error("no fanout report in {0}: nothing to summarize or plot")]
    NoReports(String),
    /// A worker process misbehaved or died.
    #[error("worker process: {0}")]
    Worker(String),
    /// A plot could not be drawn.
    #[error("cannot draw {file}: {reason}")]
    Plot {
        /// The SVG file.
        file: String,
        /// The drawing backend's reason.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
