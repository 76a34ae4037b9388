//! The demo source: publishes the current time on topic `time`, one of the topics the console's
//! playground (at `/`) offers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::broker::{Broker, PublishRequest};

/// Publishes the current UTC time on topic `time` every `interval` until `stop` is set.
pub fn run_time_source(broker: Arc<dyn Broker>, interval: Duration, stop: Arc<AtomicBool>) {
    let step = Duration::from_millis(50).min(interval);
    let mut next = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if std::time::Instant::now() >= next {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // The topic and data are always valid; a refusal (topic limit) just skips a tick.
            if let Ok(request) = PublishRequest::new(&["time"], None, &format_utc(now.as_secs())) {
                let _ = broker.publish_and_wait(request, Duration::from_secs(1));
            }
            next += interval;
        }
        std::thread::sleep(step);
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (civil-from-days, H. Hinnant).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_273_445), "2026-11-21T15:04:05Z");
    }
}
