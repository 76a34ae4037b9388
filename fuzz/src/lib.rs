//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! # Layout
//! - [`Input`]: splits a fuzz input into its control bytes (read splits and small choices) and
//!   the payload the target parses. Every target that reads in pieces uses this one layout, so a
//!   seed is `[k][k control bytes][payload]`.
//! - [`pieces`]: cuts a payload into reads of fuzz-chosen sizes.
//! - [`reference_chunked`]: a plain, whole-input chunked decoder the incremental one is compared
//!   with.

#![deny(missing_docs)]

use sse_server::http::body::MAX_CHUNK_LINE;
use sse_server::http::request::MAX_HEAD_BYTES;

/// A fuzz input split into control bytes and payload.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Bytes that choose read sizes and other small options; may be empty.
    pub control: &'a [u8],
    /// The bytes under test.
    pub payload: &'a [u8],
}

impl<'a> Input<'a> {
    /// The first byte (mod 16) says how many control bytes follow; the rest is the payload.
    pub fn split(data: &'a [u8]) -> Input<'a> {
        let Some((&first, rest)) = data.split_first() else {
            return Input {
                control: &[],
                payload: &[],
            };
        };
        let k = (first as usize % 16).min(rest.len());
        Input {
            control: &rest[..k],
            payload: &rest[k..],
        }
    }

    /// Control byte `i`, or 0 if there are fewer.
    pub fn choice(&self, i: usize) -> u8 {
        self.control.get(i).copied().unwrap_or(0)
    }
}

/// Cuts `payload` into consecutive pieces whose sizes cycle through sizes chosen by `control`:
/// a control byte below 192 gives 1 to 8 bytes (the interesting splits are inside tokens), a
/// higher one 16 to 1,040 bytes. No control bytes: the payload in one piece.
pub fn pieces<'a>(control: &[u8], payload: &'a [u8]) -> Vec<&'a [u8]> {
    if control.is_empty() {
        return vec![payload];
    }
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < payload.len() {
        let b = control[i % control.len()] as usize;
        let size = if b < 192 { b % 8 + 1 } else { (b - 191) * 16 };
        let end = (at + size).min(payload.len());
        out.push(&payload[at..end]);
        at = end;
        i += 1;
    }
    out
}

/// What a whole-input chunked decoder makes of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// The body, and how many bytes of the input it took.
    Complete(Vec<u8>, usize),
    /// The input ends before the body does, or the body is refused (the reference does not
    /// tell these apart: only complete bodies are compared).
    NotComplete,
}

/// Decodes a chunked body (RFC 9112 section 7.1, with CRLF only) from the start of `input`,
/// written as plainly as possible, with the server's limits: at most `limit` body bytes, chunk
/// lines of at most [`MAX_CHUNK_LINE`] bytes with their CR, trailer sections of at most
/// [`MAX_HEAD_BYTES`] bytes up to the final CR.
pub fn reference_chunked(input: &[u8], limit: u64) -> Chunked {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(end) = find_crlf(input, at) else {
            return Chunked::NotComplete;
        };
        let line = &input[at..end];
        if line.len() + 1 > MAX_CHUNK_LINE {
            return Chunked::NotComplete;
        }
        let Some(size) = parse_size_line(line) else {
            return Chunked::NotComplete;
        };
        if body.len() as u64 + size > limit {
            return Chunked::NotComplete;
        }
        at = end + 2;
        if size == 0 {
            break;
        }
        let size = size as usize;
        if input.len() < at + size {
            return Chunked::NotComplete;
        }
        body.extend_from_slice(&input[at..at + size]);
        at += size;
        if input.get(at..at + 2) != Some(b"\r\n") {
            return Chunked::NotComplete;
        }
        at += 2;
    }
    // Trailer lines, then the empty line.
    let trailer_start = at;
    loop {
        let Some(end) = find_crlf(input, at) else {
            return Chunked::NotComplete;
        };
        let line = &input[at..end];
        if end + 1 - trailer_start > MAX_HEAD_BYTES
            || line.contains(&b'\n')
            || line.contains(&b'\r')
        {
            return Chunked::NotComplete;
        }
        at = end + 2;
        if line.is_empty() {
            return Chunked::Complete(body, at);
        }
    }
}

fn find_crlf(input: &[u8], from: usize) -> Option<usize> {
    input[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// `1*15HEXDIG [ *(SP / HTAB) ";" ext ]`, where `ext` holds no control byte but HTAB.
fn parse_size_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
    let rest = &line[digits..];
    let spaces = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[spaces..];
    match rest.first() {
        None if spaces == 0 => Some(size),
        Some(b';') if rest.iter().all(|&b| b == b'\t' || b >= b' ' && b != 0x7f) => Some(size),
        _ => None,
    }
}
