//! Sizes, durations and counts as people type them on a command line: `1KiB`, `4MiB`, `500ms`,
//! `10s`, `2m`, `10k`, `1M`.
//!
//! Every value is a decimal number (fractions allowed: `1.5k`, `0.5s`) followed by an optional
//! suffix, with spaces around either ignored. One reader ([`parse_scaled`]) splits the number from
//! the suffix and applies the suffix's multiplier from the [`Quantity`]'s table; the three public
//! parsers only decide what a whole result must look like.
//!
//! | quantity | suffixes | case |
//! | --- | --- | --- |
//! | size (bytes) | none or `b`; binary `k`/`kib` = 1024, `m`/`mib` = 1024², `g`/`gib` = 1024³; decimal (SI) `kb` = 1000, `mb` = 1000², `gb` = 1000³ | any |
//! | duration | none or `s`; `ms`; `us` or `µs`; `m` or `min` (minutes) | exact |
//! | count | none; `k` = 10³; `m` = 10⁶; `g` = 10⁹ | any |
//!
//! These rules are the union of what `sse-server` and `sse-loadgen` each accepted before they
//! shared this code: the server now also takes `us`/`µs`/`min` and `g` counts (as the load
//! generator did), and the load generator now also takes sizes with a fraction of a byte
//! (`1.5` is 1 byte, rounded down, as the server did). Size units mean what they say: `KiB`,
//! `MiB`, `GiB` are binary and `KB`, `MB`, `GB` decimal (`4MB` is 4,000,000 bytes, `4MiB`
//! 4,194,304); a bare `k`, `m`, `g` is binary, as in GNU `dd`, `sort -S`, nginx and the JVM
//! (`64k` is 65,536). Counts are decimal (`1k` is 1000). Durations are bounded to 10⁹ s (about
//! 31 years), sizes and counts to what a `u64` holds. [`format_size`] writes a size back in the
//! largest unit that divides it exactly (`1 MiB`, `4 MB`).

use std::fmt;
use std::time::Duration;

/// Longest duration accepted, in seconds: far beyond any timeout, and far from the overflow of
/// `Instant` arithmetic.
const MAX_DURATION_SECS: f64 = 1e9;
/// 2⁶⁴ as a float: the first value a `u64` cannot hold.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// What a value measures; it chooses the suffix table and the wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// Bytes, with binary multipliers.
    Size,
    /// Time.
    Duration,
    /// A number of things, with decimal multipliers.
    Count,
}

impl Quantity {
    /// The name used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Size => "size",
            Quantity::Duration => "duration",
            Quantity::Count => "count",
        }
    }

    /// Examples of valid values, for error messages.
    pub fn examples(self) -> &'static str {
        match self {
            Quantity::Size => "4096, 64k, 1MiB",
            Quantity::Duration => "500ms, 15s, 2m",
            Quantity::Count => "500, 10k, 1.5k",
        }
    }

    /// The suffixes accepted, for error messages.
    pub fn suffixes(self) -> &'static str {
        match self {
            Quantity::Size => {
                "k or KiB (1024), KB (1000), m or MiB (1024²), MB (1000²), g or GiB, GB"
            }
            Quantity::Duration => "ms, s, m",
            Quantity::Count => "k, m or g",
        }
    }

    /// The multiplier of `suffix` (already trimmed), or `None` when it is not one of ours.
    fn multiplier(self, suffix: &str) -> Option<f64> {
        const KIB: f64 = 1024.0;
        const KB: f64 = 1000.0;
        match self {
            Quantity::Size => match suffix.to_ascii_lowercase().as_str() {
                "" | "b" => Some(1.0),
                "k" | "kib" => Some(KIB),
                "m" | "mib" => Some(KIB * KIB),
                "g" | "gib" => Some(KIB * KIB * KIB),
                "kb" => Some(KB),
                "mb" => Some(KB * KB),
                "gb" => Some(KB * KB * KB),
                _ => None,
            },
            Quantity::Duration => match suffix {
                "" | "s" => Some(1.0),
                "ms" => Some(1e-3),
                "us" | "µs" => Some(1e-6),
                "m" | "min" => Some(60.0),
                _ => None,
            },
            Quantity::Count => match suffix.to_ascii_lowercase().as_str() {
                "" => Some(1.0),
                "k" => Some(1e3),
                "m" => Some(1e6),
                "g" => Some(1e9),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value could not be read. Each message quotes the text and says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text does not start with a number.
    #[error("invalid {quantity} {text:?} (examples: {})", .quantity.examples())]
    NotANumber {
        /// What was being read.
        quantity: Quantity,
        /// The text as given (trimmed).
        text: String,
    },
    /// The suffix after the number is not one of the quantity's.
    #[error("invalid {quantity} unit in {text:?} (use {})", .quantity.suffixes())]
    UnknownSuffix {
        /// What was being read.
        quantity: Quantity,
        /// The text as given (trimmed).
        text: String,
    },
    /// A count came out fractional (`1.5`, `1.0005k`).
    #[error("{quantity} {text:?} must be a whole number")]
    NotWhole {
        /// What was being read.
        quantity: Quantity,
        /// The text as given (trimmed).
        text: String,
    },
    /// The value is too large to represent.
    #[error("{quantity} {text:?} out of range")]
    OutOfRange {
        /// What was being read.
        quantity: Quantity,
        /// The text as given (trimmed).
        text: String,
    },
}

/// Reads `number suffix` from `text` and returns the number times the suffix's multiplier, not
/// yet required to be whole or in range (a rate of `2.5k` events per second is a scaled count).
///
/// The number is the longest prefix of ASCII digits and dots; it must parse as a float. The
/// suffix is the rest, trimmed, looked up in `quantity`'s table.
pub fn parse_scaled(text: &str, quantity: Quantity) -> Result<f64, UnitError> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let value: f64 = number.parse().map_err(|_| UnitError::NotANumber {
        quantity,
        text: text.to_string(),
    })?;
    let multiplier =
        quantity
            .multiplier(suffix.trim())
            .ok_or_else(|| UnitError::UnknownSuffix {
                quantity,
                text: text.to_string(),
            })?;
    Ok(value * multiplier)
}

/// Parses a size in bytes: `512`, `64k`, `1KiB` (1024), `1KB` (1000), `1m`, `4MiB`
/// (4,194,304), `4MB` (4,000,000), `1g`. A fraction of a byte is rounded down.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bytes = parse_scaled(text, Quantity::Size)?;
    if bytes >= U64_LIMIT {
        return Err(UnitError::OutOfRange {
            quantity: Quantity::Size,
            text: text.trim().to_string(),
        });
    }
    Ok(bytes as u64)
}

/// Writes a size in the largest unit that divides it exactly, binary before decimal at each
/// step: `1 MiB`, `4 MB`, `8 KiB`, `1500 B`. For messages that name a limit.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1000),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// Parses a duration: `500ms`, `15s`, `2m` (minutes), `1.5s`, `100us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let seconds = parse_scaled(text, Quantity::Duration)?;
    if seconds > MAX_DURATION_SECS {
        return Err(UnitError::OutOfRange {
            quantity: Quantity::Duration,
            text: text.trim().to_string(),
        });
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a count: `500`, `10k` (10,000), `1.5k`, `1m` or `1M` (1,000,000), `1g`. The result must
/// be whole.
pub fn parse_count(text: &str) -> Result<u64, UnitError> {
    let count = parse_scaled(text, Quantity::Count)?;
    let (quantity, text) = (Quantity::Count, text.trim().to_string());
    if count.fract() != 0.0 {
        return Err(UnitError::NotWhole { quantity, text });
    }
    if count >= U64_LIMIT {
        return Err(UnitError::OutOfRange { quantity, text });
    }
    Ok(count as u64)
}

/// [`parse_count`] for a count held in a `usize` (capacities, lengths).
pub fn parse_count_usize(text: &str) -> Result<usize, UnitError> {
    let count = parse_count(text)?;
    usize::try_from(count).map_err(|_| UnitError::OutOfRange {
        quantity: Quantity::Count,
        text: text.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parser should make of one input: a value, or which error.
    #[derive(Debug)]
    enum Want<T> {
        /// This value.
        Is(T),
        /// No number at the start.
        NotANumber,
        /// A suffix of another quantity, or none at all.
        UnknownSuffix,
        /// A fractional count.
        NotWhole,
        /// Too large.
        OutOfRange,
    }
    use Want::*;

    /// Checks `parse` against every row of `table`.
    fn check<T: PartialEq + std::fmt::Debug>(
        parse: fn(&str) -> Result<T, UnitError>,
        table: &[(&str, Want<T>)],
    ) {
        for (input, want) in table {
            let got = parse(input);
            let ok = match (&got, want) {
                (Ok(v), Is(w)) => v == w,
                (Err(UnitError::NotANumber { .. }), NotANumber)
                | (Err(UnitError::UnknownSuffix { .. }), UnknownSuffix)
                | (Err(UnitError::NotWhole { .. }), NotWhole)
                | (Err(UnitError::OutOfRange { .. }), OutOfRange) => true,
                _ => false,
            };
            assert!(ok, "{input:?}: got {got:?}, want {want:?}");
        }
    }

    /// Sizes: `KiB`/`MiB`/`GiB` and bare `k`/`m`/`g` binary, `KB`/`MB`/`GB` decimal, in any
    /// case; fractions of a byte rounded down. (`4MB` was 4 MiB until issue 15, defect 10.)
    #[test]
    fn sizes() {
        check(
            parse_size,
            &[
                ("0", Is(0)),
                ("64", Is(64)),
                ("100", Is(100)),
                ("64b", Is(64)),
                ("1k", Is(1024)),
                ("64k", Is(65_536)),
                ("1K", Is(1024)),
                ("1KiB", Is(1024)),
                ("1kib", Is(1024)),
                ("1KB", Is(1000)),
                ("1kb", Is(1000)),
                ("1kB", Is(1000)),
                ("1.5k", Is(1536)),
                ("1.5KB", Is(1500)),
                ("1m", Is(1 << 20)),
                ("1M", Is(1 << 20)),
                ("1MiB", Is(1 << 20)),
                ("4MiB", Is(4 << 20)),
                ("4MB", Is(4_000_000)),
                ("4mb", Is(4_000_000)),
                ("1g", Is(1 << 30)),
                ("2GiB", Is(2 << 30)),
                ("2GB", Is(2_000_000_000)),
                ("256MiB", Is(256 << 20)),
                ("64KiB", Is(64 << 10)),
                (" 512 k ", Is(512 << 10)),
                ("1.5", Is(1)),
                ("1x", UnknownSuffix),
                ("1q", UnknownSuffix),
                ("1 TiB", UnknownSuffix),
                ("1 TB", UnknownSuffix),
                ("1kibi", UnknownSuffix),
                ("", NotANumber),
                ("k", NotANumber),
                ("-1", NotANumber),
                ("1.2.3", NotANumber),
                ("99999999999g", OutOfRange),
            ],
        );
    }

    /// Durations: exact-case suffixes, a bare number is seconds.
    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        check(
            parse_duration,
            &[
                ("0", Is(Duration::ZERO)),
                ("2", Is(Duration::from_secs(2))),
                ("0.5", Is(ms(500))),
                ("500ms", Is(ms(500))),
                ("5s", Is(Duration::from_secs(5))),
                ("15s", Is(Duration::from_secs(15))),
                ("1.5s", Is(ms(1500))),
                ("10s", Is(Duration::from_secs(10))),
                ("100us", Is(Duration::from_micros(100))),
                ("100µs", Is(Duration::from_micros(100))),
                ("1m", Is(Duration::from_secs(60))),
                ("2m", Is(Duration::from_secs(120))),
                ("2min", Is(Duration::from_secs(120))),
                (" 3 s ", Is(Duration::from_secs(3))),
                ("5h", UnknownSuffix),
                ("5S", UnknownSuffix),
                ("5MS", UnknownSuffix),
                ("fast", NotANumber),
                ("", NotANumber),
                ("-1s", NotANumber),
                ("2000000000s", OutOfRange),
            ],
        );
    }

    /// Counts: decimal multipliers in any case; the result must be whole.
    #[test]
    fn counts() {
        check(
            parse_count,
            &[
                ("0", Is(0)),
                ("500", Is(500)),
                ("1000", Is(1000)),
                ("10k", Is(10_000)),
                ("10K", Is(10_000)),
                ("1.5k", Is(1_500)),
                ("1m", Is(1_000_000)),
                ("1M", Is(1_000_000)),
                ("2g", Is(2_000_000_000)),
                (" 7 k", Is(7_000)),
                ("1.5", NotWhole),
                ("1.0005k", NotWhole),
                ("10x", UnknownSuffix),
                ("10KiB", UnknownSuffix),
                ("k", NotANumber),
                ("", NotANumber),
                ("-1", NotANumber),
                ("99999999999g", OutOfRange),
            ],
        );
    }

    /// Sizes are written in the largest unit that divides them exactly, binary first, and
    /// read back to the same number.
    #[test]
    fn sizes_written_back() {
        for (bytes, text) in [
            (0, "0 B"),
            (1, "1 B"),
            (1500, "1500 B"),
            (1000, "1 KB"),
            (1024, "1 KiB"),
            (8 << 10, "8 KiB"),
            (1 << 20, "1 MiB"),
            (4_000_000, "4 MB"),
            (1_024_000, "1000 KiB"),
            (256 << 20, "256 MiB"),
            (3 << 30, "3 GiB"),
            (2_000_000_000, "2 GB"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes), "{text} read back");
        }
    }

    /// A count for a `usize` is the same count.
    #[test]
    fn counts_as_usize() {
        check(
            parse_count_usize,
            &[
                ("10k", Is(10_000usize)),
                ("1.5", NotWhole),
                ("x", NotANumber),
            ],
        );
    }

    /// Each message quotes the input and says what would be valid.
    #[test]
    fn messages_name_the_input_and_the_remedy() {
        let table: &[(Result<(), UnitError>, &str)] = &[
            (
                parse_duration("fast").map(drop),
                "invalid duration \"fast\" (examples: 500ms, 15s, 2m)",
            ),
            (
                parse_duration("5h").map(drop),
                "invalid duration unit in \"5h\" (use ms, s, m)",
            ),
            (
                parse_size("1x").map(drop),
                "invalid size unit in \"1x\" (use k or KiB (1024), KB (1000), m or MiB (1024²), \
                 MB (1000²), g or GiB, GB)",
            ),
            (
                parse_count("1.5").map(drop),
                "count \"1.5\" must be a whole number",
            ),
        ];
        for (got, want) in table {
            assert_eq!(got.as_ref().unwrap_err().to_string(), *want);
        }
    }
}
