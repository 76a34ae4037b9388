//! The console at `GET /`: one page of inline HTML, CSS and JS served from the binary
//! (`page.html`), and the stream of live figures it draws (`stats.rs`).
//!
//! The figures travel as ordinary events on the reserved topic [`STATS_TOPIC`], published once
//! a second through the broker, so the page reads them with the same `GET /events` any client
//! uses. They are produced only while some stream subscribes to that topic: the loops count such
//! streams in [`Metrics::stats_watchers`](crate::metrics::Metrics::stats_watchers), and the stats
//! source publishes nothing while the count is zero.
//!
//! Topics whose names start with [`RESERVED_PREFIX`] belong to the server: `POST /publish` to
//! one is refused with `403` (`params::publish_request`), so no client can forge the figures.

mod stats;

pub use stats::{Sample, StatsSource, render_stats};

/// The console page: no external assets.
pub const PAGE: &str = include_str!("page.html");

/// The topic the live figures are published on.
pub const STATS_TOPIC: &str = "$stats";

/// The event type of the live figures (the page listens for it).
pub const STATS_EVENT: &str = "stats";

/// Topic names starting with this are the server's own.
pub const RESERVED_PREFIX: char = '$';

/// True for a topic only the server may publish to.
pub fn is_reserved_topic(topic: &str) -> bool {
    topic.starts_with(RESERVED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_dollar_topics() {
        for (topic, reserved) in [
            ("$stats", true),
            ("$anything", true),
            ("$", true),
            ("stats", false),
            ("time", false),
            ("a$b", false),
        ] {
            assert_eq!(is_reserved_topic(topic), reserved, "{topic}");
        }
        assert!(is_reserved_topic(STATS_TOPIC));
    }

    /// The page is small and self-contained: no script, style or image from elsewhere.
    #[test]
    fn page_has_no_external_assets() {
        assert!(PAGE.len() < 24 * 1024, "page is {} bytes", PAGE.len());
        for needle in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(http",
            "src=\"//",
        ] {
            assert!(!PAGE.contains(needle), "page refers to {needle}");
        }
        assert!(PAGE.contains(STATS_TOPIC) || PAGE.contains("%24stats"));
    }
}
