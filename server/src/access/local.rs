//! Publishing without a token: the rule for a direct request from this host.
//!
//! With no `--publish-token`, a publish is accepted only when it is a direct request from a
//! program on this host. Being from a loopback peer is not enough: behind a local reverse proxy
//! every request comes from `127.0.0.1`, and a page in a local browser can reach a loopback
//! server by DNS rebinding or by a cross-origin form post. So the request must also show no
//! proxy hop, name a loopback `Host`, and, if a browser sent it, come from a loopback `Origin`
//! ([`LocalRefusal`] names each failing shape):
//!
//! - **Proxy hop**: `Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`,
//!   `X-Real-IP` or `Via` present (a proxy that adds none of them is not detected: see the
//!   README's security section).
//! - **Host**: `localhost`, a name under `.localhost`, an address in `127.0.0.0/8` or `[::1]`
//!   (an IPv4-mapped `[::ffff:127.x.y.z]` too), each with or without a port, names in any case
//!   and with or without the trailing dot. Names under `.localhost` count because RFC 6761
//!   section 6.3 reserves the whole domain for loopback: name resolution should answer every
//!   name under it with the loopback address without asking DNS (browsers do), and DNS itself
//!   delegates none of it, so no rebinding attacker can own such a name; a page served under
//!   it was served by this host. Any other name, including one that
//!   resolves to `127.0.0.1` today, is what DNS rebinding uses and is refused.
//! - **No `Host`**: only possible with HTTP/1.0 (an HTTP/1.1 head without one is `400` at
//!   parsing). It is accepted from a loopback peer: browsers and proxies always send `Host`,
//!   so its absence marks an old local tool, not an attack.
//! - **Origin**: `http://` or `https://` followed by a loopback host as above, with or without
//!   a port. A page on this host can do no more than any local program. Every other origin,
//!   `null` included (sandboxed frames, `file:` pages), is refused, even one listed with
//!   `--cors-origin`: CORS lets a page read answers, it does not make the page a trusted
//!   publisher; such a page publishes with the token.
//!
//! With a token set, the token alone decides ([`Access::authorize`](super::Access::authorize)),
//! so a proxy that forwards can publish with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::http::HttpError;
use crate::http::request::RequestHead;

/// Why a publish without a token was refused (`403`): what the request showed, and what to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalRefusal {
    /// The peer is not a loopback address.
    RemotePeer,
    /// A proxy-hop header was present ([`RequestHead::forwarded`]).
    ProxyHop,
    /// The `Host` is not a loopback name or address.
    ForeignHost,
    /// A browser page from a non-loopback origin sent the request.
    ForeignOrigin,
}

impl LocalRefusal {
    /// The plain-text reason sent to the client.
    pub const fn as_str(self) -> &'static str {
        match self {
            LocalRefusal::RemotePeer => {
                "publishing without a token is allowed from this host only; \
                 set --publish-token and send Authorization: Bearer TOKEN"
            }
            LocalRefusal::ProxyHop => {
                "publishing without a token is refused through a proxy (Forwarded, \
                 X-Forwarded-*, X-Real-IP or Via present); set --publish-token and send \
                 Authorization: Bearer TOKEN"
            }
            LocalRefusal::ForeignHost => {
                "publishing without a token needs a loopback Host (localhost, 127.0.0.1, [::1]); \
                 set --publish-token and send Authorization: Bearer TOKEN"
            }
            LocalRefusal::ForeignOrigin => {
                "publishing without a token is refused from a page on a non-loopback Origin; \
                 set --publish-token and send Authorization: Bearer TOKEN"
            }
        }
    }
}

impl From<LocalRefusal> for HttpError {
    fn from(refusal: LocalRefusal) -> HttpError {
        HttpError::new(403, refusal.as_str())
    }
}

/// The rule for publishing without a token (see the module documentation): a direct request
/// from this host.
pub fn check(head: &RequestHead, peer: IpAddr) -> Result<(), LocalRefusal> {
    if !peer.to_canonical().is_loopback() {
        return Err(LocalRefusal::RemotePeer);
    }
    if head.forwarded {
        return Err(LocalRefusal::ProxyHop);
    }
    // No `Host` gets past the parser only in HTTP/1.0, which browsers and proxies do not send
    // without one.
    if head
        .host
        .as_deref()
        .is_some_and(|host| !is_loopback_authority(host))
    {
        return Err(LocalRefusal::ForeignHost);
    }
    if head
        .origin
        .as_deref()
        .is_some_and(|origin| !is_loopback_origin(origin))
    {
        return Err(LocalRefusal::ForeignOrigin);
    }
    Ok(())
}

/// Whether a `Host` value (or the authority of an origin) is a loopback host with an optional
/// port.
fn is_loopback_authority(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => "",
                after => match after.strip_prefix(':') {
                    Some(port) => port,
                    None => return false,
                },
            };
            let loopback = address
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| IpAddr::V6(ip).to_canonical().is_loopback());
            (loopback, port)
        }
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            (is_loopback_name_or_ipv4(host), port)
        }
    };
    // RFC 3986: `port = *DIGIT`; a second colon or anything else is no port.
    host && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// `localhost` or a name under `.localhost` (RFC 6761 section 6.3), or an address in
/// `127.0.0.0/8`.
fn is_loopback_name_or_ipv4(host: &str) -> bool {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let well_formed = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    well_formed && (name == "localhost" || name.ends_with(".localhost"))
}

/// Whether an `Origin` value is `http://` or `https://` with a loopback host and optional port.
fn is_loopback_origin(origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_loopback_authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Access, Permission, Refusal};
    use crate::config::Config;
    use crate::http::request::parse_head;

    const LOCAL: &str = "127.0.0.1";
    const REMOTE: &str = "192.0.2.7";

    /// Each case: what it shows, the peer, header lines after the request line, and the status
    /// of a publish with no `--publish-token` (`200`: allowed).
    const WITHOUT_TOKEN: &[(&str, &str, &str, u16)] = &[
        ("curl to 127.0.0.1", LOCAL, "Host: 127.0.0.1:8080\r\n", 200),
        ("127/8 without port", LOCAL, "Host: 127.1.2.3\r\n", 200),
        ("localhost", LOCAL, "Host: localhost:8080\r\n", 200),
        (
            "localhost, any case, FQDN",
            LOCAL,
            "Host: LocalHost.:8080\r\n",
            200,
        ),
        (
            "name under .localhost",
            LOCAL,
            "Host: app.localhost:8080\r\n",
            200,
        ),
        ("[::1] with port", "::1", "Host: [::1]:8080\r\n", 200),
        ("[::1] without port", "::1", "Host: [::1]\r\n", 200),
        (
            "IPv4-mapped peer and Host",
            "::ffff:127.0.0.1",
            "Host: [::ffff:127.0.0.1]:80\r\n",
            200,
        ),
        ("HTTP/1.0 without Host", LOCAL, "HTTP/1.0", 200),
        ("remote peer", REMOTE, "Host: 127.0.0.1:8080\r\n", 403),
        (
            "Forwarded",
            LOCAL,
            "Host: localhost\r\nForwarded: for=192.0.2.7\r\n",
            403,
        ),
        (
            "X-Forwarded-For",
            LOCAL,
            "Host: localhost\r\nX-Forwarded-For: 192.0.2.7\r\n",
            403,
        ),
        (
            "X-Forwarded-Host",
            LOCAL,
            "Host: localhost\r\nX-Forwarded-Host: a.example\r\n",
            403,
        ),
        (
            "X-Forwarded-Proto",
            LOCAL,
            "Host: localhost\r\nx-forwarded-proto: https\r\n",
            403,
        ),
        (
            "X-Real-IP",
            LOCAL,
            "Host: localhost\r\nX-Real-IP: 192.0.2.7\r\n",
            403,
        ),
        ("Via", LOCAL, "Host: localhost\r\nVia: 1.1 proxy\r\n", 403),
        (
            "empty X-Forwarded-For",
            LOCAL,
            "Host: localhost\r\nX-Forwarded-For:\r\n",
            403,
        ),
        ("public name", LOCAL, "Host: sse.example.com\r\n", 403),
        (
            "rebinding name",
            LOCAL,
            "Host: rebind.attacker.example:8080\r\n",
            403,
        ),
        (
            "name ending in localhost",
            LOCAL,
            "Host: evillocalhost\r\n",
            403,
        ),
        (
            "localhost as a subdomain",
            LOCAL,
            "Host: localhost.attacker.example\r\n",
            403,
        ),
        ("empty label", LOCAL, "Host: a..localhost\r\n", 403),
        (
            "non-loopback address",
            LOCAL,
            "Host: 192.0.2.7:8080\r\n",
            403,
        ),
        ("unspecified address", LOCAL, "Host: 0.0.0.0:8080\r\n", 403),
        (
            "non-loopback IPv6",
            "::1",
            "Host: [2001:db8::1]:8080\r\n",
            403,
        ),
        ("unbracketed IPv6", "::1", "Host: ::1\r\n", 403),
        ("bad port", LOCAL, "Host: localhost:80x\r\n", 403),
        ("userinfo", LOCAL, "Host: a@localhost\r\n", 403),
        ("empty Host", LOCAL, "Host:\r\n", 403),
        ("numeric IPv4 form", LOCAL, "Host: 2130706433\r\n", 403),
        (
            "loopback origin",
            LOCAL,
            "Host: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8080\r\n",
            200,
        ),
        (
            "localhost origin, other port",
            LOCAL,
            "Host: localhost:8080\r\nOrigin: http://localhost:3000\r\n",
            200,
        ),
        (
            "[::1] origin",
            "::1",
            "Host: [::1]:8080\r\nOrigin: http://[::1]:8080\r\n",
            200,
        ),
        (
            "https localhost origin",
            LOCAL,
            "Host: localhost\r\nOrigin: https://localhost\r\n",
            200,
        ),
        (
            "foreign origin",
            LOCAL,
            "Host: 127.0.0.1:8080\r\nOrigin: https://evil.example\r\n",
            403,
        ),
        (
            "null origin",
            LOCAL,
            "Host: 127.0.0.1:8080\r\nOrigin: null\r\n",
            403,
        ),
        (
            "origin with a path",
            LOCAL,
            "Host: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8080/x\r\n",
            403,
        ),
        (
            "other scheme",
            LOCAL,
            "Host: 127.0.0.1:8080\r\nOrigin: ws://127.0.0.1:8080\r\n",
            403,
        ),
    ];

    /// The head of `POST /publish` from the header lines of a case; `"HTTP/1.0"` means an
    /// HTTP/1.0 request with no headers at all.
    fn publish_head(headers: &str) -> RequestHead {
        let raw = if headers == "HTTP/1.0" {
            "POST /publish HTTP/1.0\r\n\r\n".to_owned()
        } else {
            format!("POST /publish HTTP/1.1\r\n{headers}\r\n")
        };
        parse_head(raw.as_bytes())
            .expect("head parses")
            .expect("head complete")
            .0
    }

    fn status(access: &Access, peer: &str, headers: &str) -> (u16, &'static str) {
        let peer: IpAddr = peer.parse().unwrap();
        match access.authorize(&publish_head(headers), peer, Permission::Publish, None) {
            Ok(_) => (200, ""),
            Err(Refusal::Http(error)) => (error.status, error.reason),
            Err(Refusal::InvalidToken(refusal)) => (401, refusal.as_str()),
        }
    }

    /// Without a token, only direct requests from this host publish: each proxy header, each
    /// non-loopback `Host` and each non-loopback `Origin` is refused with 403 and a reason that
    /// says to set `--publish-token`.
    #[test]
    fn publishing_without_token_is_local_only() {
        let access = Access::new(&Config::default());
        for &(what, peer, headers, expected) in WITHOUT_TOKEN {
            let (status, reason) = status(&access, peer, headers);
            assert_eq!(status, expected, "{what}: {reason}");
            if status == 403 {
                assert!(reason.contains("set --publish-token"), "{what}: {reason}");
            }
        }
    }

    /// Each refused shape is told apart in the reason.
    #[test]
    fn refusals_name_what_the_request_showed() {
        let access = Access::new(&Config::default());
        for (peer, headers, refusal) in [
            (REMOTE, "Host: localhost\r\n", LocalRefusal::RemotePeer),
            (
                LOCAL,
                "Host: localhost\r\nX-Real-IP: 192.0.2.7\r\n",
                LocalRefusal::ProxyHop,
            ),
            (
                LOCAL,
                "Host: sse.example.com\r\n",
                LocalRefusal::ForeignHost,
            ),
            (
                LOCAL,
                "Host: localhost\r\nOrigin: https://evil.example\r\n",
                LocalRefusal::ForeignOrigin,
            ),
        ] {
            assert_eq!(status(&access, peer, headers), (403, refusal.as_str()));
        }
    }

    /// With a token, the token alone decides: every shape refused above publishes with the right
    /// bearer token (so a proxy that forwards can publish), and none does without it.
    #[test]
    fn token_decides_when_set() {
        let access = Access::new(&Config {
            publish_token: Some("t0k".into()),
            ..Config::default()
        });
        for &(what, peer, headers, _) in WITHOUT_TOKEN {
            if headers == "HTTP/1.0" {
                continue;
            }
            let with_token = format!("{headers}Authorization: Bearer t0k\r\n");
            assert_eq!(status(&access, peer, &with_token).0, 200, "{what}");
            assert_eq!(status(&access, peer, headers).0, 401, "{what}");
        }
    }
}
