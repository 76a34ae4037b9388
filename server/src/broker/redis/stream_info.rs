//! What `XINFO STREAM` says about a stream: its first entry, and whether entries after an id
//! may have been removed from it. The replay thread asks it of topic streams (can Redis vouch
//! for a client's id?), the feed reader of the feed (was it trimmed past this node while the
//! node was cut off?).

use redis::Value;

use super::entries::{self, bytes, integer};
use crate::event::EventId;

/// The fields of one `XINFO STREAM` reply that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamInfo {
    /// The id of the oldest entry left; `None` for an empty stream.
    pub(super) first: Option<EventId>,
    /// `length`, `entries-added`, `max-deleted-entry-id`, `last-generated-id`; `None` from a
    /// Redis before 7.0, which does not give the last three.
    counts: Option<Counts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    length: u64,
    added: u64,
    max_deleted: EventId,
    last_generated: EventId,
}

impl StreamInfo {
    /// Reads an `XINFO STREAM` reply (a flat array in RESP2, a map in RESP3); `None` when it is
    /// not one.
    pub(super) fn parse(info: &Value) -> Option<StreamInfo> {
        let fields: Vec<(&[u8], &Value)> = match info {
            Value::Array(items) => items
                .chunks_exact(2)
                .filter_map(|pair| Some((bytes(&pair[0])?, &pair[1])))
                .collect(),
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(key, value)| Some((bytes(key)?, value)))
                .collect(),
            _ => return None,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| *key == name.as_bytes())
                .map(|(_, value)| *value)
        };
        integer(field("length")?)?;
        let first = field("first-entry").and_then(|entry| match entry {
            Value::Array(parts) => parts.first().and_then(entries::entry_id),
            _ => None,
        });
        let counts = (|| {
            Some(Counts {
                length: integer(field("length")?)?,
                added: integer(field("entries-added")?)?,
                max_deleted: entries::entry_id(field("max-deleted-entry-id")?)?,
                last_generated: entries::entry_id(field("last-generated-id")?)?,
            })
        })();
        Some(StreamInfo { first, counts })
    }

    /// Whether entries with ids above `after` may have been removed; `None` when Redis does not
    /// say (before 7.0). Trimming (`MAXLEN`) removes the oldest entries, so all it removed lies
    /// below the first entry left (or, in an empty stream, up to the last id generated); `XDEL`
    /// shows in `max-deleted-entry-id`.
    pub(super) fn removed_after(&self, after: EventId) -> Option<bool> {
        let counts = self.counts?;
        let below = self
            .first
            .unwrap_or(counts.last_generated.saturating_add(1));
        let trimmed = counts.added > counts.length && after.saturating_add(1) < below;
        Some(trimmed || counts.max_deleted > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// `XINFO STREAM` fields as Redis 7 gives them (RESP2: a flat array).
    fn info(length: i64, added: i64, deleted: &str, last: &str, first: Option<&str>) -> Value {
        let first = first.map_or(Value::Nil, |id| {
            Value::Array(vec![bulk(id), Value::Array(vec![bulk("d"), bulk("x")])])
        });
        Value::Array(vec![
            bulk("length"),
            Value::Int(length),
            bulk("last-generated-id"),
            bulk(last),
            bulk("max-deleted-entry-id"),
            bulk(deleted),
            bulk("entries-added"),
            Value::Int(added),
            bulk("first-entry"),
            first,
        ])
    }

    /// Whether entries after an id may be gone: trimming removes entries below the first one
    /// left, `XDEL` shows in `max-deleted-entry-id`, and a Redis that says neither vouches for
    /// nothing.
    #[test]
    fn tells_whether_entries_after_an_id_were_removed() {
        let cases: &[(Value, EventId, Option<bool>)] = &[
            // Nothing ever removed.
            (info(8, 8, "0-0", "8-0", Some("1-0")), 0, Some(false)),
            // 1..3 trimmed, 4..8 left: ids from 3 on lost nothing after them.
            (info(5, 8, "0-0", "8-0", Some("4-0")), 3, Some(false)),
            (info(5, 8, "0-0", "8-0", Some("4-0")), 6, Some(false)),
            (info(5, 8, "0-0", "8-0", Some("4-0")), 2, Some(true)),
            // Everything trimmed: only ids from the last generated one lost nothing.
            (info(0, 8, "0-0", "8-0", None), 8, Some(false)),
            (info(0, 8, "0-0", "8-0", None), 7, Some(true)),
            // An entry deleted after the id.
            (info(7, 8, "6-0", "8-0", Some("1-0")), 5, Some(true)),
            (info(7, 8, "6-0", "8-0", Some("1-0")), 6, Some(false)),
            // A Redis before 7.0: no entries-added, no max-deleted-entry-id.
            (Value::Array(vec![bulk("length"), Value::Int(3)]), 0, None),
        ];
        for (value, after, expected) in cases {
            let info = StreamInfo::parse(value).expect("an XINFO reply");
            assert_eq!(
                info.removed_after(*after),
                *expected,
                "after {after}: {value:?}"
            );
        }
        assert_eq!(StreamInfo::parse(&Value::Nil), None);
        let first = StreamInfo::parse(&info(5, 8, "0-0", "8-0", Some("4-0"))).unwrap();
        assert_eq!(first.first, Some(4));
    }
}
