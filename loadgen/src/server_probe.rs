//! Where the server's memory and CPU figures come from ([`ServerProbe`]): `/proc` of its
//! processes (read by [`sysinfo`](crate::sysinfo)), or its Prometheus `/metrics` page, fetched
//! over HTTP and scraped for `process_resident_memory_bytes` and `process_cpu_seconds_total`.
//!
//! Separate from `sysinfo`, which reads this machine's operating system only: this module talks
//! to a server, and says plainly when its page cannot give the figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::http;
use crate::sysinfo::ServerPids;
use crate::url::HttpUrl;

/// What a server's Prometheus endpoint says about its process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessMetrics {
    /// `process_resident_memory_bytes`.
    pub rss_bytes: Option<u64>,
    /// `process_cpu_seconds_total`.
    pub cpu_seconds: Option<f64>,
}

/// Fetches `url` and reads the process metrics from it. `None` when unreachable, not 200, or
/// not answered within 2 s.
pub fn fetch_metrics(url: &HttpUrl) -> Option<ProcessMetrics> {
    let addr = url.resolve().ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n",
        url.path_and_query,
        url.host_header()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let read = |s: &mut TcpStream, chunk: &mut [u8]| -> Option<usize> {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        s.read(chunk).ok()
    };
    let (head, len) = loop {
        let n = read(&mut s, &mut chunk)?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(h) = http::parse_head(&buf).ok()? {
            break h;
        }
    };
    if head.status != 200 || head.is_event_stream() {
        return None;
    }
    let mut body = Vec::new();
    let mut decoder = http::BodyDecoder::new(head.body);
    decoder
        .feed(&buf[len..], &mut |b| body.extend_from_slice(b))
        .ok()?;
    while !decoder.is_done() && body.len() < 16 << 20 {
        let n = read(&mut s, &mut chunk)?;
        if n == 0 {
            break;
        }
        decoder
            .feed(&chunk[..n], &mut |b| body.extend_from_slice(b))
            .ok()?;
    }
    Some(parse_metrics(&String::from_utf8_lossy(&body)))
}

/// What to warn about a `--metrics-url` at `url` that answered `metrics` (`None`: no usable
/// answer), or `None` when it has both process metrics.
pub fn metrics_warning(url: &str, metrics: Option<ProcessMetrics>) -> Option<String> {
    let missing = match metrics {
        None => {
            return Some(format!(
                "--metrics-url {url}: no metrics page there (unreachable, not 200, or an event \
                 stream); server memory and CPU will be n/a"
            ));
        }
        Some(ProcessMetrics {
            rss_bytes: None,
            cpu_seconds: None,
        }) => {
            "neither process_resident_memory_bytes nor process_cpu_seconds_total; server \
               memory and CPU will be n/a"
        }
        Some(ProcessMetrics {
            rss_bytes: None, ..
        }) => "no process_resident_memory_bytes; server memory will be n/a",
        Some(ProcessMetrics {
            cpu_seconds: None, ..
        }) => "no process_cpu_seconds_total; server CPU will be n/a",
        Some(_) => return None,
    };
    Some(format!("--metrics-url {url} has {missing}"))
}

/// Reads `process_resident_memory_bytes` and `process_cpu_seconds_total` from Prometheus text.
pub fn parse_metrics(text: &str) -> ProcessMetrics {
    let mut m = ProcessMetrics::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let name = name.split('{').next().unwrap_or(name);
        match name {
            "process_resident_memory_bytes" => {
                m.rss_bytes = value.parse::<f64>().ok().map(|v| v as u64)
            }
            "process_cpu_seconds_total" => m.cpu_seconds = value.parse().ok(),
            _ => {}
        }
    }
    m
}

/// Where the server's memory and CPU figures come from.
#[derive(Debug, Clone)]
pub enum ServerProbe {
    /// `/proc/PID` of the server processes (one, or every node of a cluster) and their
    /// children, summed.
    Pids(ServerPids),
    /// The server's Prometheus endpoint.
    Metrics(HttpUrl),
    /// Not measured.
    None,
}

impl ServerProbe {
    /// A short name for the report.
    pub fn source(&self) -> &'static str {
        match self {
            ServerProbe::Pids(_) => "proc",
            ServerProbe::Metrics(_) => "metrics",
            ServerProbe::None => "none",
        }
    }

    /// The server's resident memory now.
    pub fn rss_bytes(&self) -> Option<u64> {
        match self {
            ServerProbe::Pids(pids) => pids.rss_bytes(),
            ServerProbe::Metrics(url) => fetch_metrics(url)?.rss_bytes,
            ServerProbe::None => None,
        }
    }

    /// The server's CPU seconds so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self {
            ServerProbe::Pids(pids) => pids.cpu_seconds(),
            ServerProbe::Metrics(url) => fetch_metrics(url)?.cpu_seconds,
            ServerProbe::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_warnings() {
        let m = |rss_bytes, cpu_seconds| {
            Some(ProcessMetrics {
                rss_bytes,
                cpu_seconds,
            })
        };
        let table: &[(Option<ProcessMetrics>, Option<&str>)] = &[
            (m(Some(1), Some(1.0)), None),
            (m(Some(1), None), Some("no process_cpu_seconds_total")),
            (m(None, Some(1.0)), Some("no process_resident_memory_bytes")),
            (m(None, None), Some("neither process_resident_memory_bytes")),
            (None, Some("no metrics page there")),
        ];
        for (metrics, want) in table {
            let got = metrics_warning("http://x/metrics", *metrics);
            match (got, want) {
                (None, None) => {}
                (Some(text), Some(want)) => assert!(text.contains(want), "{text}"),
                (got, want) => panic!("{metrics:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn metrics_text() {
        let text = "# HELP x\nsse_connections_open 3\nprocess_resident_memory_bytes 1.2345e+07\nprocess_cpu_seconds_total 1.5\n";
        let m = parse_metrics(text);
        assert_eq!(m.rss_bytes, Some(12_345_000));
        assert_eq!(m.cpu_seconds, Some(1.5));
    }
}
