//! How a figure's values read: the unit they are in ([`Unit`]) and its short labels
//! (`160 B`, `10 KiB`, `500 µs`, `2 s`, `30k`, `1.5M`), for tick labels and last-value labels.

/// What the values of an axis measure, which decides how they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, in binary multiples: `160 B`, `10 KiB`, `1 MiB`.
    Bytes,
    /// Microseconds, read as `500 µs`, `10 ms`, `2 s`.
    Micros,
    /// Plain counts or rates: `950`, `30k`, `1.5M`.
    Count,
}

impl Unit {
    /// `value` as a short label in this unit.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Bytes => scaled(
                value,
                &[
                    (1.0, " B"),
                    (1024.0, " KiB"),
                    (1048576.0, " MiB"),
                    (1073741824.0, " GiB"),
                ],
            ),
            Unit::Micros => scaled(value, &[(1.0, " µs"), (1e3, " ms"), (1e6, " s")]),
            Unit::Count => scaled(value, &[(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")]),
        }
    }
}

/// `value` in the largest of `units` (factor, suffix, in rising order) it reaches, with about
/// three significant digits and no trailing zeros. A value that would round up to the next
/// unit's factor is written in that unit (`1 MiB`, not `1024 KiB`).
fn scaled(value: f64, units: &[(f64, &str)]) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{}{}", short_number(value), units[0].1);
    }
    let magnitude = value.abs();
    let mut pick = 0;
    for (i, &(factor, _)) in units.iter().enumerate() {
        if magnitude >= factor || rounds_up_to(magnitude / units[pick].0, factor / units[pick].0) {
            pick = i;
        }
    }
    let (factor, suffix) = units[pick];
    format!("{}{suffix}", short_number(value / factor))
}

/// Whether `x` written by [`short_number`] reads as `limit` or more.
fn rounds_up_to(x: f64, limit: f64) -> bool {
    short_number(x).parse::<f64>().is_ok_and(|v| v >= limit)
}

/// About three significant digits, trailing zeros dropped: `128`, `27.5`, `1.5`, `0.25`.
pub fn short_number(x: f64) -> String {
    let decimals = match x.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values as the tick labels and the last-value labels show them.
    #[test]
    fn values_read_in_their_unit() {
        let table: &[(Unit, f64, &str)] = &[
            (Unit::Bytes, 0.0, "0 B"),
            (Unit::Bytes, 8.0, "8 B"),
            (Unit::Bytes, 150.46, "150 B"),
            (Unit::Bytes, 160.0, "160 B"),
            (Unit::Bytes, 1023.0, "1023 B"),
            (Unit::Bytes, 1024.0, "1 KiB"),
            (Unit::Bytes, 1536.0, "1.5 KiB"),
            (Unit::Bytes, 10240.0, "10 KiB"),
            (Unit::Bytes, 28171.74, "27.5 KiB"),
            (Unit::Bytes, 1048575.0, "1 MiB"),
            (Unit::Bytes, 1048576.0, "1 MiB"),
            (Unit::Bytes, 3.5 * 1073741824.0, "3.5 GiB"),
            (Unit::Micros, 0.5, "0.5 µs"),
            (Unit::Micros, 535.0, "535 µs"),
            (Unit::Micros, 500.0, "500 µs"),
            (Unit::Micros, 1500.0, "1.5 ms"),
            (Unit::Micros, 10_000.0, "10 ms"),
            (Unit::Micros, 10_247.0, "10.2 ms"),
            (Unit::Micros, 128_319.0, "128 ms"),
            (Unit::Micros, 999_999.0, "1 s"),
            (Unit::Micros, 2_000_000.0, "2 s"),
            (Unit::Micros, 2_009_087.0, "2.01 s"),
            (Unit::Count, 0.0, "0"),
            (Unit::Count, 950.0, "950"),
            (Unit::Count, 2500.0, "2.5k"),
            (Unit::Count, 30_000.0, "30k"),
            (Unit::Count, 75_739.41, "75.7k"),
            (Unit::Count, 1_500_000.0, "1.5M"),
            (Unit::Count, 6_000_000.0, "6M"),
            (Unit::Count, 2e9, "2G"),
        ];
        for &(unit, value, want) in table {
            assert_eq!(unit.format(value), want, "{unit:?} {value}");
        }
    }

    #[test]
    fn short_numbers_keep_three_digits_and_no_trailing_zeros() {
        let table: &[(f64, &str)] = &[
            (128.4, "128"),
            (27.51, "27.5"),
            (10.0, "10"),
            (1.5, "1.5"),
            (0.25, "0.25"),
            (0.001, "0"),
            (-0.001, "0"),
            (-4.1, "-4.1"),
        ];
        for &(x, want) in table {
            assert_eq!(short_number(x), want, "{x}");
        }
    }
}
