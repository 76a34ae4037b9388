//! The server's request head parser (`http::request::parse_head`) never panics, refuses only
//! with the statuses it documents, and, when it accepts a head:
//! - the head is at most `MAX_HEAD_BYTES`, ends in CRLF CRLF and holds no bare LF;
//! - parsing exactly the head's bytes gives the same head, and every fuzz-chosen shorter prefix
//!   asks for more (a head read in pieces is never refused);
//! - the body framing agrees with a naive reading of the header lines: `Transfer-Encoding`
//!   means chunked and never beside `Content-Length`; one `Content-Length` gives its length;
//! - the values it keeps hold no line break and no leading or trailing SP or HTAB.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_fuzz::Input;
use sse_server::http::request::{BodyFraming, MAX_HEAD_BYTES, RequestHead, parse_head};

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    let buf = input.payload;
    match parse_head(buf) {
        Ok(Some((head, len))) => check_accepted(&input, &head, len),
        Ok(None) => assert!(buf.len() < MAX_HEAD_BYTES, "partial head past the bound"),
        Err(error) => assert!(
            matches!(error.status, 400 | 417 | 431 | 501 | 505),
            "undocumented status {error:?}"
        ),
    }
});

fn check_accepted(input: &Input<'_>, head: &RequestHead, len: usize) {
    let buf = input.payload;
    assert!(len <= buf.len() && len <= MAX_HEAD_BYTES);
    let raw = &buf[..len];
    assert!(raw.ends_with(b"\r\n\r\n"), "{raw:?}");
    for (i, &b) in raw.iter().enumerate() {
        assert!(
            b != b'\n' || i > 0 && raw[i - 1] == b'\r',
            "bare LF accepted"
        );
        assert!(
            b != b'\r' || raw.get(i + 1) == Some(&b'\n'),
            "bare CR accepted"
        );
    }

    let again = parse_head(raw).expect("the head alone is refused");
    let (again, again_len) = again.expect("the head alone is partial");
    assert_eq!(again_len, len);
    assert_eq!(format!("{again:?}"), format!("{head:?}"));
    for &c in input.control {
        let cut = c as usize * len / 256;
        assert!(
            matches!(parse_head(&raw[..cut]), Ok(None)),
            "prefix of {cut} bytes not partial"
        );
    }

    assert!(head.minor_version <= 1);
    assert!(!head.path.contains('?'));
    assert!(head.minor_version == 0 || head.host.is_some());
    assert!(!head.expect_continue || head.minor_version == 1);
    for value in [
        &head.content_type,
        &head.authorization,
        &head.origin,
        &head.host,
        &head.last_event_id,
        &head.access_control_request_headers,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!value.contains(['\r', '\n']), "{value:?}");
        assert!(
            !value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']),
            "{value:?}"
        );
    }
    if let Some(media) = &head.content_type {
        assert!(!media.bytes().any(|b| b.is_ascii_uppercase()));
    }

    // A naive reading of the framing headers.
    let mut lengths = Vec::new();
    let mut transfer_encoding = false;
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths.push(std::str::from_utf8(value).unwrap().parse::<u64>().unwrap());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        }
    }
    match head.body {
        BodyFraming::Chunked => {
            assert!(transfer_encoding && lengths.is_empty() && head.minor_version == 1);
        }
        BodyFraming::Length(n) => {
            assert!(!transfer_encoding && n > 0 && lengths == [n]);
        }
        BodyFraming::None => {
            assert!(!transfer_encoding && (lengths.is_empty() || lengths == [0]));
        }
    }
}
