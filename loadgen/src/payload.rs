//! The body of every published event, and its parser on the subscriber side.
//!
//! Format (ASCII, one line): `sselg run=<16 hex digits> seq=<decimal> t=<decimal>` followed by
//! one space and `.` filler up to the `--payload` size, which must be at least [`MIN_SIZE`] (the
//! longest header) so every event is exactly that size. `run` is a random id per run so that events of an earlier run (kept
//! in a server's replay history, say) are not counted; `seq` numbers the events of a run from 0;
//! `t` is the event's *scheduled* send time in nanoseconds since the Unix epoch.
//!
//! Subscribers read `seq` and `t` from the data and never look at event ids, so any server works
//! (nchan's ids look like `1700000000:0`). Data that does not start with `sselg ` is someone
//! else's event (a demo ticker, say) and is ignored.

/// What every payload starts with.
pub const PREFIX: &[u8] = b"sselg run=";

/// The smallest `--payload`, in bytes: the longest header, with a sequence number of up to
/// 10 digits and a 19-digit send time (nanoseconds until the year 2286). Every payload of this
/// size or more is exactly its size.
pub const MIN_SIZE: u64 = (PREFIX.len() + 16 + " seq=".len() + 10 + " t=".len() + 19) as u64;

/// Why `size` cannot be a payload size, if it cannot.
pub fn check_size(size: u64) -> Result<(), String> {
    if size < MIN_SIZE {
        return Err(format!(
            "--payload {size}: a payload must be at least {MIN_SIZE} bytes, the stamp every event \
             carries (run id, sequence number, scheduled send time)"
        ));
    }
    Ok(())
}

/// The fields of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run id.
    pub run: u64,
    /// The event's sequence number within the run.
    pub seq: u64,
    /// The scheduled send time, ns since the Unix epoch.
    pub scheduled_ns: u64,
}

/// Writes the payload for `stamp`, padded to `size` bytes, into `out` (cleared first).
pub fn encode(stamp: Stamp, size: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(
        out,
        "sselg run={:016x} seq={} t={}",
        stamp.run, stamp.seq, stamp.scheduled_ns
    );
    if out.len() < size {
        out.push(b' ');
        out.resize(size, b'.');
    }
}

/// Parses a payload; `None` for data that is not one of ours.
pub fn decode(data: &[u8]) -> Option<Stamp> {
    let rest = data.strip_prefix(PREFIX)?;
    if rest.len() < 16 {
        return None;
    }
    let (hex, rest) = rest.split_at(16);
    let mut run = 0u64;
    for &b in hex {
        run = run << 4 | u64::from((b as char).to_digit(16)?);
    }
    let rest = rest.strip_prefix(b" seq=")?;
    let (seq, rest) = decimal(rest)?;
    let rest = rest.strip_prefix(b" t=")?;
    let (scheduled_ns, _) = decimal(rest)?;
    Some(Stamp {
        run,
        seq,
        scheduled_ns,
    })
}

/// Reads a decimal number at the start of `s`.
fn decimal(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 || end > 19 {
        return None;
    }
    let n = s[..end]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some((n, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let stamp = Stamp {
            run: 0xdead_beef_0123_4567,
            seq: 42,
            scheduled_ns: 1_700_000_000_123_456_789,
        };
        let mut out = Vec::new();
        for size in [0usize, 10, 64, 100, 4096] {
            encode(stamp, size, &mut out);
            assert!(out.len() >= size);
            assert!(size < 60 || out.len() == size, "{size}");
            assert!(out.is_ascii() && !out.contains(&b'\n'));
            assert_eq!(decode(&out), Some(stamp));
        }
    }

    /// At [`MIN_SIZE`] every payload of a run is exactly its size, up to the longest sequence
    /// number and send time it allows; one byte less is refused.
    #[test]
    fn minimum_size_is_always_exact() {
        let table: &[(u64, u64)] = &[
            (0, 1_700_000_000_123_456_789),
            (9_999_999_999, 9_999_999_999_999_999_999),
        ];
        let mut out = Vec::new();
        for &(seq, scheduled_ns) in table {
            let stamp = Stamp {
                run: u64::MAX,
                seq,
                scheduled_ns,
            };
            encode(stamp, MIN_SIZE as usize, &mut out);
            assert_eq!(out.len() as u64, MIN_SIZE, "{stamp:?}");
            assert_eq!(decode(&out), Some(stamp));
        }
        assert!(check_size(MIN_SIZE).is_ok());
        assert!(check_size(MIN_SIZE - 1).is_err());
    }

    #[test]
    fn foreign_data_table() {
        let table: &[&[u8]] = &[
            b"",
            b"2026-11-21T13:00:00Z",
            b"sselg run=xyz",
            b"sselg run=00000000000000zz seq=1 t=2",
            b"sselg run=0000000000000001 seq= t=2",
            b"sselg run=0000000000000001 seq=1",
            b"sselg run=0000000000000001 seq=1 t=99999999999999999999",
        ];
        for data in table {
            assert_eq!(decode(data), None, "{data:?}");
        }
    }
}
