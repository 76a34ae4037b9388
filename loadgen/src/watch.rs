//! `sse-loadgen watch URL`: a debugging client that prints each dispatched event, and with
//! `--reconnect` reconnects as a browser does (honouring `retry`, sending `Last-Event-ID`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::fanout::subscribe_request;
use crate::http::{self, BodyDecoder};
use crate::sse::{Dispatch, EventStreamParser};
use crate::url::HttpUrl;

/// How `watch` runs.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// The event-stream URL.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// `Last-Event-ID` of the first request.
    pub last_event_id: Option<String>,
    /// `GET` or `POST`.
    pub method: String,
    /// Request body (with `POST`).
    pub data: Option<String>,
    /// One JSON object per line instead of readable text.
    pub json: bool,
    /// Reconnect at the end of the stream or on a network error.
    pub reconnect: bool,
    /// Reconnection delay until the server sends `retry`.
    pub initial_retry: Duration,
    /// Stop after this many events.
    pub max_events: Option<u64>,
}

/// How a connection ended.
enum StreamEnd {
    /// The server closed the stream (or the network failed) after it was established.
    Closed,
    /// Enough events were printed.
    Done,
}

/// Runs `watch`, printing to `out`.
pub fn run_watch(s: &WatchSettings, out: &mut impl Write) -> Result<()> {
    let url = HttpUrl::parse(&s.url)?;
    let addr = url.resolve()?;
    let mut parser = match &s.last_event_id {
        Some(id) => EventStreamParser::with_last_event_id(id.as_bytes()),
        None => EventStreamParser::new(),
    };
    let mut retry = s.initial_retry;
    let mut printed = 0u64;
    let mut first = true;
    loop {
        let last_id = if first {
            s.last_event_id.clone()
        } else {
            Some(String::from_utf8_lossy(parser.last_event_id()).into_owned())
                .filter(|id| !id.is_empty())
        };
        let result = watch_once(
            s,
            &url,
            addr,
            last_id.as_deref(),
            &mut parser,
            &mut retry,
            &mut printed,
            out,
        );
        match result {
            Ok(StreamEnd::Done) => return Ok(()),
            Ok(StreamEnd::Closed) if !s.reconnect => {
                eprintln!("sse-loadgen: the server closed the stream after {printed} events");
                return Ok(());
            }
            Ok(StreamEnd::Closed) => eprintln!(
                "sse-loadgen: the server closed the stream after {printed} events; reconnecting in {retry:?}"
            ),
            // A browser stops for good on a bad status or content type; so do we. A network
            // error reconnects, except before anything was ever received.
            Err(e @ (Error::Status { .. } | Error::ContentType(_) | Error::Http(_))) => {
                return Err(e);
            }
            Err(e) if first || !s.reconnect => return Err(e),
            Err(e) => eprintln!("sse-loadgen: {e}; reconnecting in {retry:?}"),
        }
        first = false;
        parser.finish();
        out.flush().map_err(|e| Error::io("cannot write", e))?;
        std::thread::sleep(retry);
    }
}

/// One connection: request, head, events until the end.
#[allow(clippy::too_many_arguments)]
fn watch_once(
    s: &WatchSettings,
    url: &HttpUrl,
    addr: std::net::SocketAddr,
    last_event_id: Option<&str>,
    parser: &mut EventStreamParser,
    retry: &mut Duration,
    printed: &mut u64,
    out: &mut impl Write,
) -> Result<StreamEnd> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| Error::Connect {
            addr: addr.to_string(),
            source: e,
        })?;
    let req = subscribe_request(url, &s.headers, &s.method, s.data.as_deref(), last_event_id);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| Error::io("cannot send the request", e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_bytes = Vec::new();
    let (head, len) = loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read the response", e))?;
        if n == 0 {
            return Err(Error::io(
                "the server closed the connection before a response",
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        head_bytes.extend_from_slice(&buf[..n]);
        if let Some(h) = http::parse_head(&head_bytes)? {
            break h;
        }
    };
    let mut body = BodyDecoder::new(head.body);
    if head.status != 200 {
        let mut excerpt = Vec::new();
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut pending = head_bytes[len..].to_vec();
        loop {
            let _ = body.feed(&pending, &mut |b| excerpt.extend_from_slice(b));
            if body.is_done() || excerpt.len() >= 200 {
                break;
            }
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => pending = buf[..n].to_vec(),
                _ => break,
            }
        }
        excerpt.truncate(200);
        return Err(Error::Status {
            status: head.status,
            reason: head.reason,
            excerpt: String::from_utf8_lossy(&excerpt).trim().to_string(),
        });
    }
    if !head.is_event_stream() {
        return Err(Error::ContentType(
            head.header("content-type").unwrap_or("none").to_string(),
        ));
    }
    let mut pending = head_bytes[len..].to_vec();
    loop {
        let mut io_result = Ok(());
        let mut done = false;
        body.feed(&pending, &mut |chunk| {
            parser.feed(chunk, &mut |d| {
                if done || io_result.is_err() {
                    return;
                }
                io_result = print_dispatch(d, s.json, retry, out);
                if matches!(d, Dispatch::Event(_)) {
                    *printed += 1;
                    done = s.max_events.is_some_and(|m| *printed >= m);
                }
            })
        })?;
        io_result.map_err(|e| Error::io("cannot write", e))?;
        if done {
            out.flush().map_err(|e| Error::io("cannot write", e))?;
            return Ok(StreamEnd::Done);
        }
        if body.is_done() {
            return Ok(StreamEnd::Closed);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(StreamEnd::Closed),
            Ok(n) => pending = buf[..n].to_vec(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => pending.clear(),
            Err(e) if s.reconnect => {
                eprintln!("sse-loadgen: {e}; reconnecting");
                return Ok(StreamEnd::Closed);
            }
            Err(e) => return Err(Error::io("cannot read the stream", e)),
        }
        out.flush().map_err(|e| Error::io("cannot write", e))?;
    }
}

/// Prints one dispatch.
fn print_dispatch(
    d: Dispatch<'_>,
    as_json: bool,
    retry: &mut Duration,
    out: &mut impl Write,
) -> std::io::Result<()> {
    match d {
        Dispatch::Retry(ms) => {
            *retry = Duration::from_millis(ms);
            if as_json {
                writeln!(out, "{}", json!({ "retry": ms }))
            } else {
                writeln!(out, "retry: {ms} ms")
            }
        }
        Dispatch::Event(e) => {
            if as_json {
                // Written by hand to keep the documented key order (event, data, id).
                let quote = |s: &str| serde_json::Value::from(s).to_string();
                writeln!(
                    out,
                    "{{\"event\":{},\"data\":{},\"id\":{}}}",
                    quote(&e.event_type_str()),
                    quote(&e.data_str()),
                    quote(&e.last_event_id_str())
                )
            } else {
                let id = e.last_event_id_str();
                let data = e.data_str();
                let mut lines = data.split('\n');
                writeln!(
                    out,
                    "[{}{}] {}",
                    e.event_type_str(),
                    if id.is_empty() {
                        String::new()
                    } else {
                        format!(" id={id}")
                    },
                    lines.next().unwrap_or("")
                )?;
                for l in lines {
                    writeln!(out, "    | {l}")?;
                }
                Ok(())
            }
        }
    }
}
