//! The small `http://` URL type the load generator is configured by. Only plain HTTP/1.1 is
//! spoken; put a TLS-terminating proxy in front of an `https` server.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};

/// A parsed `http://host[:port][/path][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host as written (a name, an IPv4 address or a bracketed IPv6 address).
    pub host: String,
    /// The port, 80 when not given.
    pub port: u16,
    /// The path and query, always starting with `/`.
    pub path_and_query: String,
}

impl HttpUrl {
    /// Parses `s`, rejecting anything that is not a usable `http://` URL.
    pub fn parse(s: &str) -> Result<HttpUrl> {
        let bad = |reason: &str| Error::Url {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.starts_with("https://") {
            return Err(bad(
                "https is not supported (put a TLS-terminating proxy in front)",
            ));
        } else {
            return Err(bad("it must start with http://"));
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after the IPv6 address")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("no host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host contains whitespace"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port is not a number in 1-65535"))?,
        };
        let mut path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if path_and_query.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path contains whitespace"));
        }
        if let Some(i) = path_and_query.find('#') {
            path_and_query.truncate(i);
        }
        Ok(HttpUrl {
            host,
            port,
            path_and_query,
        })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the host to a socket address (the first one the resolver gives).
    pub fn resolve(&self) -> Result<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map_err(|e| Error::io(format!("cannot resolve {}", self.host), e))?
            .next()
            .ok_or_else(|| Error::Url {
                url: self.to_string(),
                reason: "the host resolves to no address".into(),
            })
    }

    /// The first value of query parameter `name`, if any (no percent-decoding).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let (_, query) = self.path_and_query.split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input, and its host, port and path when it is valid.
    type UrlCase = (&'static str, Option<(&'static str, u16, &'static str)>);

    #[test]
    fn parses_table() {
        let table: &[UrlCase] = &[
            (
                "http://127.0.0.1:8080/events",
                Some(("127.0.0.1", 8080, "/events")),
            ),
            ("http://localhost", Some(("localhost", 80, "/"))),
            ("http://h:1?x=1", Some(("h", 1, "/?x=1"))),
            ("http://[::1]:9/a?b#frag", Some(("[::1]", 9, "/a?b"))),
            ("http://h/a?topic=x&y=2", Some(("h", 80, "/a?topic=x&y=2"))),
            ("https://h/", None),
            ("ftp://h/", None),
            ("h:80/x", None),
            ("http://", None),
            ("http://h:0/", None),
            ("http://h:99999/", None),
            ("http://h:x/", None),
            ("http://a b/", None),
            ("not a url", None),
        ];
        for (input, want) in table {
            let got = HttpUrl::parse(input).ok();
            let got = got
                .as_ref()
                .map(|u| (u.host.as_str(), u.port, u.path_and_query.as_str()));
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn query_params() {
        let u = HttpUrl::parse("http://h/events?topic=bench&x=1").unwrap();
        assert_eq!(u.query_param("topic"), Some("bench"));
        assert_eq!(u.query_param("nope"), None);
        assert_eq!(u.host_header(), "h");
    }
}
