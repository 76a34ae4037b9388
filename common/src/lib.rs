//! sse-common: the command-line values both binaries of the workspace read, parsed by one piece
//! of code, so `1MiB`, `500ms` and `10k` mean the same to `sse-server` and `sse-loadgen`.
//!
//! # Layout
//! - [`units`]: sizes (`1KiB`, `4MiB`, `4MB`; and written back, `1 MiB`), durations (`500ms`,
//!   `10s`, `2m`) and counts (`10k`, `1M`), their shared number-and-suffix reader, and
//!   [`UnitError`].
#![deny(missing_docs)]

pub mod units;

pub use units::{
    Quantity, UnitError, format_size, parse_count, parse_count_usize, parse_duration, parse_scaled,
    parse_size,
};
