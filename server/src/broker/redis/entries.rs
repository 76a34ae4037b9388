//! Reading Redis replies: stream entries (`ID-0` and the fields `t` topics, one per line, `e`
//! event type, `d` data) back into events, the publish script's id, and numbers (`TIME`, `GET`).

use redis::Value;

use crate::broker::{PublishRequest, Published};
use crate::event::EventId;

/// One stream entry read back: its event id and the event as the publisher sent it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: EventId,
    pub(super) request: PublishRequest,
}

impl Entry {
    /// The event encoded for the loops.
    pub(super) fn into_published(self) -> Published {
        self.request.into_published(self.id)
    }
}

/// A bulk or simple string reply's bytes.
pub(super) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// The event id of a stream entry id `ID-0`.
pub(super) fn entry_id(value: &Value) -> Option<EventId> {
    let text = std::str::from_utf8(bytes(value)?).ok()?;
    let (id, _) = text.split_once('-')?;
    id.parse().ok()
}

/// The publish script's answer: the id as a decimal string.
pub(super) fn id_reply(value: &Value) -> Option<EventId> {
    std::str::from_utf8(bytes(value)?).ok()?.parse().ok()
}

/// An integer reply, or a decimal bulk string (`GET`); `None` for nil.
pub(super) fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// `TIME`'s `[seconds, microseconds]` in microseconds.
pub(super) fn time_micros(value: &Value) -> Option<u64> {
    match value {
        Value::Array(parts) => match parts.as_slice() {
            [seconds, micros] => Some(integer(seconds)? * 1_000_000 + integer(micros)?),
            _ => None,
        },
        _ => None,
    }
}

/// One entry `[ID, [field, value, ...]]`; `None` if it is not one of ours.
pub(super) fn parse_entry(value: &Value) -> Option<Entry> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let id = entry_id(id)?;
    let (mut topics, mut event_type, mut data) = (None, None, None);
    for pair in fields.chunks_exact(2) {
        let value = std::str::from_utf8(bytes(&pair[1])?).ok()?;
        match bytes(&pair[0])? {
            b"t" => topics = Some(value),
            b"e" => event_type = Some(value),
            b"d" => data = Some(value),
            _ => {}
        }
    }
    let topics: Vec<&str> = topics?.split('\n').collect();
    let request = PublishRequest::new(&topics, event_type, data?).ok()?;
    Some(Entry { id, request })
}

/// The entries of an `XRANGE`/`XREVRANGE` reply, as listed.
pub(super) fn range_entries(value: &Value) -> Vec<Entry> {
    match value {
        Value::Array(entries) => entries.iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREAD` reply for one stream (`Nil` when the block timed out).
pub(super) fn read_entries(value: &Value) -> Vec<Entry> {
    let Value::Array(streams) = value else {
        return Vec::new();
    };
    streams
        .iter()
        .filter_map(|stream| match stream {
            Value::Array(parts) => match parts.as_slice() {
                [_key, entries] => Some(range_entries(entries)),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    /// What an entry should read back as: id, topics, event type, data (`None`: skipped).
    type Expected = Option<(
        EventId,
        &'static [&'static str],
        Option<&'static str>,
        &'static str,
    )>;

    /// Entries as the script writes them read back into events; anything else is skipped.
    #[test]
    fn parses_entries() {
        let cases: &[(Value, Expected)] = &[
            (
                entry("1700000000000001-0", &["t", "a\nb", "d", "hi"]),
                Some((1_700_000_000_000_001, &["a", "b"], None, "hi")),
            ),
            (
                entry("42-0", &["t", "a", "d", "x\ny", "e", "tick"]),
                Some((42, &["a"], Some("tick"), "x\ny")),
            ),
            (entry("42-0", &["t", "a"]), None),
            (entry("42", &["t", "a", "d", "x"]), None),
            (entry("x-0", &["t", "a", "d", "x"]), None),
            (bulk("42-0"), None),
        ];
        for (value, expected) in cases {
            let parsed = parse_entry(value);
            match (parsed, expected) {
                (None, None) => {}
                (Some(entry), Some((id, topics, kind, data))) => {
                    assert_eq!(entry.id, *id);
                    let names: Vec<&str> = entry.request.topics().iter().map(|t| &**t).collect();
                    assert_eq!(names, *topics);
                    assert_eq!(entry.request.event_type(), *kind);
                    assert_eq!(entry.request.data(), *data);
                }
                (parsed, expected) => panic!("{value:?}: {parsed:?} vs {expected:?}"),
            }
        }
    }

    /// An XREAD reply is `[[key, [entries]]]`, or nil when the block timed out.
    #[test]
    fn parses_read_replies() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("{sse}:feed"),
            Value::Array(vec![
                entry("5-0", &["t", "a", "d", "1"]),
                entry("7-0", &["t", "a", "d", "2"]),
            ]),
        ])]);
        let ids: Vec<EventId> = read_entries(&reply).iter().map(|e| e.id).collect();
        assert_eq!(ids, [5, 7]);
        assert!(read_entries(&Value::Nil).is_empty());
        assert_eq!(id_reply(&bulk("123")), Some(123));
        assert_eq!(id_reply(&Value::Nil), None);
    }

    /// `TIME` and `GET` replies read as numbers.
    #[test]
    fn reads_time_and_integers() {
        let time = Value::Array(vec![bulk("1700000000"), bulk("123456")]);
        assert_eq!(time_micros(&time), Some(1_700_000_000_123_456));
        assert_eq!(integer(&bulk("42")), Some(42));
        assert_eq!(integer(&Value::Int(7)), Some(7));
        assert_eq!(integer(&Value::Nil), None);
    }
}
