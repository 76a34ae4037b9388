//! Parsers for the values the command line accepts: counts (`10k`, `1.5k`, `1m`), sizes (`64`,
//! `1k`, `1KiB`), durations (`5s`, `500ms`), rates (`100`, `1k`, `100/s`), source-IP ranges
//! (`127.0.0.1-127.0.0.8`), step lists (`1k,5k,10k`) and `K:V` headers.
//!
//! Each returns `Result<_, String>` so clap shows the message as the error.

use std::net::IpAddr;
use std::time::Duration;

/// Splits `12.5k` into `(12.5, "k")`.
fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(end);
    if num.is_empty() {
        return Err(format!("{s:?} does not start with a number"));
    }
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a number"))?;
    Ok((value, suffix.trim()))
}

/// Parses a count: `500`, `10k` (10,000), `1.5k`, `1m` (1,000,000). Decimal multipliers.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let (value, suffix) = split_number(s)?;
    let mult = match suffix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => return Err(format!("{s:?}: unknown suffix {suffix:?} (use k or m)")),
    };
    let n = value * mult;
    if n.fract() != 0.0 || n > u64::MAX as f64 {
        return Err(format!("{s:?} is not a whole count"));
    }
    Ok(n as u64)
}

/// Parses a size in bytes: `64`, `1k` or `1KiB` (1024), `1m` or `1MiB`. Binary multipliers.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (value, suffix) = split_number(s)?;
    let mult = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown size suffix {suffix:?} (use k, KiB, m, MiB)"
            ));
        }
    };
    let n = value * mult;
    if n.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(n as u64)
}

/// Parses a duration: `5s`, `500ms`, `2m`, `1.5s`, `100us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (value, suffix) = split_number(s)?;
    let secs = match suffix {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown duration suffix {suffix:?} (use ms, s, m)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Parses an event rate per second: `100`, `1k`, `2.5k/s`, `0.5`. Must be positive.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    let (value, suffix) = split_number(t)?;
    let mult = match suffix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        _ => return Err(format!("{s:?}: unknown suffix {suffix:?} (use k or m)")),
    };
    let rate = value * mult;
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
        .map(parse_count)
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
