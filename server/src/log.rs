//! Warnings on stderr that cannot flood it: a condition that repeats (accept failing at the
//! open-file limit on every tick, say) prints at most one line per interval, and the next line
//! says how many were suppressed meanwhile. A blocked or slow stderr then costs a loop at most
//! one write per interval.

use std::time::{Duration, Instant};

/// How often one repeated warning may be printed.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One warning's rate limit.
#[derive(Debug, Default)]
pub struct RateLimited {
    /// When it was last printed.
    last: Option<Instant>,
    /// Occurrences not printed since.
    suppressed: u64,
}

impl RateLimited {
    /// The line to print for this occurrence, or `None` when it is suppressed.
    pub fn line(&mut self, now: Instant, message: &str) -> Option<String> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        Some(if suppressed > 0 {
            format!("sse-server: {message} ({suppressed} more like it suppressed)")
        } else {
            format!("sse-server: {message}")
        })
    }

    /// Prints this occurrence on stderr unless it is suppressed.
    pub fn warn(&mut self, message: &str) {
        if let Some(line) = self.line(Instant::now(), message) {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per interval, and the next one counts what was suppressed.
    #[test]
    fn repeats_are_suppressed_and_counted() {
        let mut warning = RateLimited::default();
        let start = Instant::now();
        assert_eq!(warning.line(start, "x").as_deref(), Some("sse-server: x"));
        for n in 1..=5 {
            assert_eq!(warning.line(start + Duration::from_secs(n), "x"), None);
        }
        assert_eq!(
            warning.line(start + INTERVAL, "x").as_deref(),
            Some("sse-server: x (5 more like it suppressed)")
        );
        assert_eq!(warning.line(start + INTERVAL, "x"), None);
    }
}
