//! Parsers for the values the command line accepts. Counts (`10k`, `1.5k`, `1m`), sizes (`64`,
//! `1k`, `1KiB`) and durations (`5s`, `500ms`) are the workspace's shared parsers from
//! `sse-common`, re-exported here; the load generator's own values are built on them: rates
//! (`100`, `1k`, `100/s`), source-IP ranges (`127.0.0.1-127.0.0.8`), step lists (`1k,5k,10k`)
//! and `K:V` headers.
//!
//! The load generator's own parsers return `Result<_, String>` so clap shows the message as the
//! error.

use std::net::IpAddr;

use sse_common::Quantity;

use crate::payload;
pub use sse_common::{parse_count, parse_duration, parse_size};

/// Parses a payload size: a size ([`parse_size`]) of at least [`payload::MIN_SIZE`] bytes.
pub fn parse_payload_size(s: &str) -> Result<u64, String> {
    let size = parse_size(s).map_err(|e| e.to_string())?;
    payload::check_size(size)?;
    Ok(size)
}

/// Parses an event rate per second: `100`, `1k`, `2.5k/s`, `0.5`, with the count suffixes of
/// [`parse_count`] (`k`, `m`, `g`). Must be positive.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    // A rate is a count per second that may be fractional.
    let rate = sse_common::parse_scaled(t, Quantity::Count)
        .map_err(|e| format!("invalid rate {s:?}: {e}"))?;
    if rate.is_nan() || rate <= 0.0 || rate.is_infinite() {
        return Err(format!("{s:?}: the rate must be greater than 0"));
    }
    Ok(rate)
}

/// Parses source addresses: `127.0.0.1-127.0.0.8` (an IPv4 range), or a comma-separated list.
pub fn parse_ip_range(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: std::net::Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
            let b: std::net::Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a >= 65536 {
                return Err(format!("{part:?}: bad range"));
            }
            out.extend((a..=b).map(|ip| IpAddr::V4(ip.into())));
        } else {
            out.push(
                part.parse()
                    .map_err(|_| format!("{part:?} is not an IP address"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(out)
}

/// A list of addresses as one command-line value (clap would otherwise treat a `Vec` as
/// repeated values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressList(pub Vec<IpAddr>);

/// [`parse_ip_range`] as one command-line value.
pub fn parse_address_list(s: &str) -> Result<AddressList, String> {
    parse_ip_range(s).map(AddressList)
}

/// Connection counts as one command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps(pub Vec<u64>);

/// [`parse_steps`] as one command-line value.
pub fn parse_step_list(s: &str) -> Result<Steps, String> {
    parse_steps(s).map(Steps)
}

/// Parses a comma-separated list of counts: `1k,5k,10k,19k`.
pub fn parse_steps(s: &str) -> Result<Vec<u64>, String> {
    let steps = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|step| parse_count(step).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() || steps.contains(&0) {
        return Err(format!("{s:?}: steps must be positive counts"));
    }
    Ok(steps)
}

/// Parses a `Name: value` header.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: a header is NAME:VALUE"))?;
    let k = k.trim();
    if k.is_empty() || k.bytes().any(|b| !b.is_ascii_graphic()) || s.contains(['\r', '\n']) {
        return Err(format!("{s:?}: invalid header name or value"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts() {
        let table: &[(&str, Option<u64>)] = &[
            ("500", Some(500)),
            ("10k", Some(10_000)),
            ("1.5k", Some(1_500)),
            ("1m", Some(1_000_000)),
            ("1M", Some(1_000_000)),
            ("0", Some(0)),
            ("1.5", None),
            ("k", None),
            ("10x", None),
            ("", None),
            ("-1", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_count(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn sizes() {
        let table: &[(&str, Option<u64>)] = &[
            ("64", Some(64)),
            ("1k", Some(1024)),
            ("1KiB", Some(1024)),
            ("4MiB", Some(4 << 20)),
            ("1m", Some(1 << 20)),
            ("1q", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_size(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn durations() {
        let table: &[(&str, Option<Duration>)] = &[
            ("5s", Some(Duration::from_secs(5))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2", Some(Duration::from_secs(2))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("1m", Some(Duration::from_secs(60))),
            ("5h", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn rates() {
        let table: &[(&str, Option<f64>)] = &[
            ("100", Some(100.0)),
            ("1k", Some(1000.0)),
            ("100/s", Some(100.0)),
            ("0.5", Some(0.5)),
            ("0", None),
            ("x", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_rate(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn ip_ranges() {
        let ips = parse_ip_range("127.0.0.1-127.0.0.8").unwrap();
        assert_eq!(ips.len(), 8);
        assert_eq!(ips[7].to_string(), "127.0.0.8");
        assert_eq!(parse_ip_range("127.0.0.1,::1").unwrap().len(), 2);
        assert!(parse_ip_range("127.0.0.8-127.0.0.1").is_err());
        assert!(parse_ip_range("nope").is_err());
    }

    #[test]
    fn steps_and_headers() {
        assert_eq!(parse_steps("1k,5k, 19k").unwrap(), vec![1000, 5000, 19000]);
        assert!(parse_steps("1k,0").is_err());
        assert_eq!(
            parse_header("X-A: b c").unwrap(),
            ("X-A".to_string(), "b c".to_string())
        );
        assert!(parse_header("nocolon").is_err());
    }
}
