//! Events and their wire form.
//!
//! An event is encoded exactly once, when it is published, into the bytes every subscriber will
//! receive (`id:`, optional `event:`, one `data:` line per line of data, blank line). The result
//! is an immutable [`EncodedEvent`] shared by reference count: fan-out writes from it directly.

use std::sync::Arc;

/// Server-assigned event id: increasing across all topics and across restarts.
pub type EventId = u64;

/// Longest topic or event-type name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a topic, event type or data was refused. Each maps to a `400` with this text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum EventError {
    /// A topic was empty, too long or held a control character.
    InvalidTopic,
    /// The event type was empty, too long or held a control character.
    InvalidEventType,
    /// The data was not valid UTF-8 (the SSE wire format is UTF-8).
    DataNotUtf8,
}

impl EventError {
    /// A short reason for the client.
    pub fn reason(self) -> &'static str {
        match self {
            EventError::InvalidTopic => {
                "topic must be 1-128 bytes of UTF-8 without control characters"
            }
            EventError::InvalidEventType => {
                "event type must be 1-128 bytes of UTF-8 without control characters"
            }
            EventError::DataNotUtf8 => "event data must be valid UTF-8",
        }
    }
}

/// Checks a topic or event-type name: 1 to [`MAX_NAME_LEN`] bytes, no control characters, so
/// that nothing a client sends can end a line on the wire (no event injection).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

/// An event's complete wire bytes, shared by every subscriber that receives it.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// The id written in the `id:` line.
    pub id: EventId,
    /// `id: ...\n[event: ...\n]data: ...\n...\n`: one allocation, never copied again.
    pub wire: Arc<[u8]>,
}

impl EncodedEvent {
    /// Encodes an event. `event_type` must already be valid ([`is_valid_name`]); data lines are
    /// split at CRLF, LF and lone CR, as a client's parser will split them, so every line of the
    /// data becomes its own `data:` line and no line break inside the data can end the event.
    pub fn encode(id: EventId, event_type: Option<&str>, data: &str) -> EncodedEvent {
        let mut wire = Vec::with_capacity(encoded_len(id, event_type, data));
        wire.extend_from_slice(b"id: ");
        push_decimal(&mut wire, id);
        wire.push(b'\n');
        if let Some(kind) = event_type {
            wire.extend_from_slice(b"event: ");
            wire.extend_from_slice(kind.as_bytes());
            wire.push(b'\n');
        }
        for line in DataLines::new(data.as_bytes()) {
            wire.extend_from_slice(b"data: ");
            wire.extend_from_slice(line);
            wire.push(b'\n');
        }
        wire.push(b'\n');
        EncodedEvent {
            id,
            wire: Arc::from(wire),
        }
    }

    /// Length of the wire form in bytes.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// Always false: an encoded event has at least its `id:` line.
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

/// Exact size of the encoding, so it is built in one allocation.
fn encoded_len(id: EventId, event_type: Option<&str>, data: &str) -> usize {
    let id_len = "id: \n".len() + decimal_len(id);
    let type_len = event_type.map_or(0, |kind| "event: \n".len() + kind.len());
    let data_len: usize = DataLines::new(data.as_bytes())
        .map(|line| "data: \n".len() + line.len())
        .sum();
    id_len + type_len + data_len + 1
}

/// Appends `value` in decimal without an intermediate `String`.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn decimal_len(mut value: u64) -> usize {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

/// The lines of event data, split at CRLF, LF or a lone CR. Empty data is one empty line, and a
/// trailing line break yields a final empty line, so the client reassembles the data exactly.
struct DataLines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> DataLines<'a> {
    fn new(data: &'a [u8]) -> Self {
        DataLines { rest: Some(data) }
    }
}

impl<'a> Iterator for DataLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(end) => {
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.rest = Some(&rest[end + skip..]);
                Some(&rest[..end])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: event type, data, the exact wire bytes.
    const CASES: &[(Option<&str>, &str, &str)] = &[
        (None, "hello", "id: 7\ndata: hello\n\n"),
        (Some("tick"), "t", "id: 7\nevent: tick\ndata: t\n\n"),
        (None, "", "id: 7\ndata: \n\n"),
        (None, "a\nb", "id: 7\ndata: a\ndata: b\n\n"),
        (None, "a\r\nb", "id: 7\ndata: a\ndata: b\n\n"),
        (None, "a\rb", "id: 7\ndata: a\ndata: b\n\n"),
        (None, "a\r\rb", "id: 7\ndata: a\ndata: \ndata: b\n\n"),
        (None, "a\n", "id: 7\ndata: a\ndata: \n\n"),
        (None, "\n\n", "id: 7\ndata: \ndata: \ndata: \n\n"),
        (None, "x\r\n\ny", "id: 7\ndata: x\ndata: \ndata: y\n\n"),
        (None, " lead", "id: 7\ndata:  lead\n\n"),
        (
            None,
            "id: 9\n\nevent: x",
            "id: 7\ndata: id: 9\ndata: \ndata: event: x\n\n",
        ),
        (None, "ünï", "id: 7\ndata: ünï\n\n"),
    ];

    /// The encoder writes exactly the expected bytes, in one allocation of the right size.
    #[test]
    fn encodes_wire_form() {
        for &(kind, data, expected) in CASES {
            let event = EncodedEvent::encode(7, kind, data);
            assert_eq!(
                std::str::from_utf8(&event.wire).unwrap(),
                expected,
                "data {data:?}"
            );
            assert_eq!(encoded_len(7, kind, data), expected.len());
        }
    }

    /// Names with control characters (CR, LF, NUL, ...) are refused: no event injection.
    #[test]
    fn validates_names() {
        for ok in ["a", "time", "chat/room-1", "ünï", &"x".repeat(128)] {
            assert!(is_valid_name(ok), "{ok:?}");
        }
        for bad in ["", "a\nb", "a\rb", "a\0", "\t", "\u{7f}", &"x".repeat(129)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn decimal_lengths() {
        for value in [0, 9, 10, 99, 100, 1_795_267_363_602_000, u64::MAX] {
            assert_eq!(decimal_len(value), value.to_string().len());
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }
}
