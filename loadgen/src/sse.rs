//! An incremental parser for the `text/event-stream` format that follows the WHATWG HTML
//! "event stream interpretation" (§9.2.6) exactly.
//!
//! Bytes are fed as they arrive, in pieces of any size. The parser works on bytes and splits
//! lines at the ASCII terminators before anything is decoded, which gives the same result as
//! decoding the whole stream as UTF-8 first: CR, LF and `:` never occur inside a multi-byte
//! character, and a character split across reads is simply kept in the line buffer until its
//! line ends. Callers decode the values they want with [`String::from_utf8_lossy`], which
//! replaces invalid sequences exactly as the spec's decoder does.
//!
//! The per-connection state is small: four byte buffers, which stay empty or hold one line, one
//! event's data and two ids.

use std::borrow::Cow;

/// The UTF-8 byte order mark; one leading BOM is stripped from the stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// An event as dispatched by the parser. The slices borrow the parser's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event type: the `event` field's value, or `message` by default.
    pub event_type: &'a [u8],
    /// The `data` field values joined with LF.
    pub data: &'a [u8],
    /// The last event ID string at the time of dispatch.
    pub last_event_id: &'a [u8],
}

impl Event<'_> {
    /// The event type, decoded.
    pub fn event_type_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.event_type)
    }
    /// The data, decoded.
    pub fn data_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.data)
    }
    /// The last event ID, decoded.
    pub fn last_event_id_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.last_event_id)
    }
}

/// What the parser reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch<'a> {
    /// A blank line ended an event with data.
    Event(Event<'a>),
    /// A `retry` field with a value of only ASCII digits set the reconnection time (ms).
    Retry(u64),
}

/// The incremental event-stream parser; one per connection.
#[derive(Debug, Default, Clone)]
pub struct EventStreamParser {
    /// How many bytes of a leading BOM have been matched so far.
    bom_matched: u8,
    /// Whether the BOM check is over (a BOM was stripped or the stream did not start with one).
    bom_done: bool,
    /// The previous piece ended with CR, so an LF at the start of the next one is part of it.
    after_cr: bool,
    /// The bytes of the current, not yet terminated, line.
    line: Vec<u8>,
    /// The data buffer: `data` values, each followed by LF.
    data: Vec<u8>,
    /// The event type buffer.
    event_type: Vec<u8>,
    /// The last event ID buffer, set by `id` fields.
    id_buffer: Vec<u8>,
    /// The last event ID string, copied from the buffer at every blank line.
    last_event_id: Vec<u8>,
}

impl EventStreamParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser whose last event ID starts as `id` (a reconnection that sent `Last-Event-ID`).
    pub fn with_last_event_id(id: &[u8]) -> Self {
        Self {
            id_buffer: id.to_vec(),
            last_event_id: id.to_vec(),
            ..Self::default()
        }
    }

    /// The last event ID string: what a browser would send as `Last-Event-ID` on reconnection.
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_event_id
    }

    /// Feeds the next piece of the stream, calling `on` for every dispatch it completes.
    pub fn feed(&mut self, mut input: &[u8], on: &mut impl FnMut(Dispatch<'_>)) {
        while !self.bom_done {
            let Some(&b) = input.first() else {
                return;
            };
            if b == BOM[self.bom_matched as usize] {
                self.bom_matched += 1;
                input = &input[1..];
                if self.bom_matched == 3 {
                    self.bom_done = true;
                }
            } else {
                // Not a BOM after all: the bytes matched so far are ordinary content.
                self.bom_done = true;
                let matched = self.bom_matched as usize;
                self.feed_lines(&BOM[..matched], on);
            }
        }
        self.feed_lines(input, on);
    }

    /// Ends the stream: an event not terminated by a blank line is discarded (the spec's
    /// "once the end of the file is reached, any pending data must be discarded").
    pub fn finish(&mut self) {
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.after_cr = false;
        self.bom_done = false;
        self.bom_matched = 0;
    }

    /// Splits `input` into lines at CRLF, LF or a lone CR and processes each complete one.
    fn feed_lines(&mut self, mut input: &[u8], on: &mut impl FnMut(Dispatch<'_>)) {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        while let Some(pos) = input.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut next = pos + 1;
            if input[pos] == b'\r' {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(&input[..pos], on);
            } else {
                // The line started in an earlier piece. Take the buffer out so that
                // `process_line` may borrow `self`; put it back to keep its capacity.
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..pos]);
                self.process_line(&line, on);
                line.clear();
                self.line = line;
            }
            input = &input[next..];
        }
        self.line.extend_from_slice(input);
    }

    /// Interprets one line.
    fn process_line(&mut self, line: &[u8], on: &mut impl FnMut(Dispatch<'_>)) {
        if line.is_empty() {
            self.dispatch(on);
            return;
        }
        if line[0] == b':' {
            return; // a comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            // An id containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.extend_from_slice(value);
            }
            // A retry value that is not all ASCII digits is ignored.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, &d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                on(Dispatch::Retry(ms));
            }
            _ => {}
        }
    }

    /// A blank line: set the last event ID and dispatch the event if it has data.
    fn dispatch(&mut self, on: &mut impl FnMut(Dispatch<'_>)) {
        self.last_event_id.clear();
        self.last_event_id.extend_from_slice(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop(); // the data buffer always ends with the LF added after each value
        let event_type: &[u8] = if self.event_type.is_empty() {
            b"message"
        } else {
            &self.event_type
        };
        on(Dispatch::Event(Event {
            event_type,
            data: &self.data,
            last_event_id: &self.last_event_id,
        }));
        self.data.clear();
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned dispatch, for comparing with the tables.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Ev(String, String, String),
        Retry(u64),
    }

    fn ev(t: &str, d: &str, id: &str) -> Out {
        Out::Ev(t.into(), d.into(), id.into())
    }

    fn parse_pieces(pieces: &[&[u8]]) -> (Vec<Out>, Vec<u8>) {
        let mut p = EventStreamParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut |d| {
                out.push(match d {
                    Dispatch::Event(e) => Out::Ev(
                        e.event_type_str().into(),
                        e.data_str().into(),
                        e.last_event_id_str().into(),
                    ),
                    Dispatch::Retry(ms) => Out::Retry(ms),
                })
            });
        }
        p.finish();
        (out, p.last_event_id().to_vec())
    }

    /// The cases: the web-platform-tests `eventsource/format-*.htm` streams (names kept) and
    /// one case per rule of the interpretation algorithm.
    fn cases() -> Vec<(&'static str, Vec<u8>, Vec<Out>)> {
        let m = "message";
        vec![
            (
                "format-bom",
                b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n".to_vec(),
                vec![ev(m, "1", ""), ev(m, "3", "")],
            ),
            (
                "format-bom-2",
                b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n".to_vec(),
                vec![ev(m, "2", ""), ev(m, "3", "")],
            ),
            (
                "format-comments",
                b"data:1\r:\0\n:\r\ndata:2\n:\xEF\xBF\xBF\r\ndata:3\n:data:fail\r:\nevent:x\ndata:4\n\n"
                    .to_vec(),
                vec![ev("x", "1\n2\n3\n4", "")],
            ),
            (
                "format-data-before-final-empty-line",
                b"retry:1000\ndata:test1\n\nid:test\ndata:test2".to_vec(),
                vec![Out::Retry(1000), ev(m, "test1", "")],
            ),
            (
                "format-field-data",
                b"data:\n\ndata\ndata\n\ndata:test\n\n".to_vec(),
                vec![ev(m, "", ""), ev(m, "\n", ""), ev(m, "test", "")],
            ),
            (
                "format-field-event-empty",
                b"event: \ndata:data\n\n".to_vec(),
                vec![ev(m, "data", "")],
            ),
            (
                "format-field-event",
                b"event:test\ndata:x\n\ndata:x\n\n".to_vec(),
                vec![ev("test", "x", ""), ev(m, "x", "")],
            ),
            (
                "format-field-id",
                b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n".to_vec(),
                vec![ev(m, "a", "1"), ev(m, "b", "2")],
            ),
            (
                "format-field-id-2",
                b"id:1\ndata:x\n\nid:\ndata:y\n\n".to_vec(),
                vec![ev(m, "x", "1"), ev(m, "y", "")],
            ),
            (
                "format-field-id-3 (id persists across events)",
                b"id:1\ndata:x\n\ndata:y\n\n".to_vec(),
                vec![ev(m, "x", "1"), ev(m, "y", "1")],
            ),
            (
                "format-field-id-null",
                b"id:1\ndata:a\n\nid:1\x002\ndata:b\n\n".to_vec(),
                vec![ev(m, "a", "1"), ev(m, "b", "1")],
            ),
            (
                "id set on a dispatch with empty data",
                b"id:7\n\ndata:x\n\n".to_vec(),
                vec![ev(m, "x", "7")],
            ),
            (
                "format-field-parsing",
                b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n"
                    .to_vec(),
                vec![ev(m, "\0\n 2\n1\n3\n\n4", "")],
            ),
            (
                "format-field-retry-bogus",
                b"retry:3000\nretry:1000x\ndata:x\n\n".to_vec(),
                vec![Out::Retry(3000), ev(m, "x", "")],
            ),
            (
                "format-field-retry-empty",
                b"retry\ndata:test\n\nretry:\n".to_vec(),
                vec![ev(m, "test", "")],
            ),
            (
                "format-field-retry",
                b"retry:03000\ndata:x\n\nretry: 12\nretry:  5\nretry:-1\nretry:1.5\n".to_vec(),
                vec![Out::Retry(3000), ev(m, "x", ""), Out::Retry(12)],
            ),
            (
                "format-field-unknown",
                b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n"
                    .to_vec(),
                vec![ev(m, "test\n\ntest", "")],
            ),
            (
                "format-leading-space",
                b"data:\ttest\rdata: \ndata:test\n\n".to_vec(),
                vec![ev(m, "\ttest\n\ntest", "")],
            ),
            (
                "format-newlines",
                b"data:test\r\ndata\ndata:test\r\n\r\n".to_vec(),
                vec![ev(m, "test\n\ntest", "")],
            ),
            (
                "format-null-character",
                b"data:\0\n\n".to_vec(),
                vec![ev(m, "\0", "")],
            ),
            (
                "format-utf-8",
                "data:ok\u{2026}\u{1F600}\n\n".as_bytes().to_vec(),
                vec![ev(m, "ok\u{2026}\u{1F600}", "")],
            ),
            (
                "invalid UTF-8 replaced",
                b"data:a\xFFb\xE2\x82\n\n".to_vec(),
                vec![ev(m, "a\u{FFFD}b\u{FFFD}", "")],
            ),
            (
                "lone CR line endings",
                b"data:a\rdata:b\r\rdata:c\r\r".to_vec(),
                vec![ev(m, "a\nb", ""), ev(m, "c", "")],
            ),
            (
                "only one leading space stripped",
                b"data:  two\n\n".to_vec(),
                vec![ev(m, " two", "")],
            ),
            (
                "colon in value kept",
                b"data: a:b: c\n\n".to_vec(),
                vec![ev(m, "a:b: c", "")],
            ),
            (
                "event type reset after dispatch and on empty data",
                b"event:a\n\nevent:b\ndata:1\n\ndata:2\n\n".to_vec(),
                vec![ev("b", "1", ""), ev(m, "2", "")],
            ),
            (
                "unterminated event discarded",
                b"data:1\n\ndata:2\n".to_vec(),
                vec![ev(m, "1", "")],
            ),
            (
                "BOM only at the start",
                b"\xEF\xBB".to_vec(),
                vec![],
            ),
            (
                "partial BOM is content",
                b"\xEF\xBBdata:1\n\ndata:2\n\n".to_vec(),
                vec![ev(m, "2", "")],
            ),
            (
                "huge retry saturates",
                b"retry:99999999999999999999999\n".to_vec(),
                vec![Out::Retry(u64::MAX)],
            ),
        ]
    }

    #[test]
    fn whole_input() {
        for (name, input, want) in cases() {
            let (got, _) = parse_pieces(&[&input]);
            assert_eq!(got, want, "{name}");
        }
    }

    /// Every case split in two at every byte position (which splits CRLFs, BOMs and UTF-8
    /// characters), and fed one byte at a time.
    #[test]
    fn split_at_every_position() {
        for (name, input, want) in cases() {
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                let (got, _) = parse_pieces(&[a, b]);
                assert_eq!(got, want, "{name} split at {i}");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let (got, _) = parse_pieces(&bytes);
            assert_eq!(got, want, "{name} byte by byte");
        }
    }

    #[test]
    fn last_event_id_survives_for_reconnection() {
        let (_, id) = parse_pieces(&[b"id: 5\ndata: x\n\nid: 6\n\nid: 7\ndata: y\n"]);
        // `7` belongs to an unterminated event, so the last event ID string is still `6`.
        assert_eq!(id, b"6");
        let mut p = EventStreamParser::with_last_event_id(b"41");
        let mut ids = Vec::new();
        p.feed(b"data: z\n\n", &mut |d| {
            if let Dispatch::Event(e) = d {
                ids.push(e.last_event_id.to_vec())
            }
        });
        assert_eq!(ids, vec![b"41".to_vec()]);
    }
}
