//! The open-descriptor figure of `/metrics` (`process_open_fds`), sampled off the event loops.
//!
//! Counting this process's descriptors may mean walking `/proc/self/fd` (kernels before 6.2
//! give no count in one `stat`), a cost that grows with the connections. A loop answering
//! `GET /metrics` must not pay it, so a thread of its own takes the sample every
//! [`SAMPLE_INTERVAL`] into [`Metrics::open_fds`], and a scrape reads one atomic. The figure is
//! therefore up to that interval old.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::sys;

/// How often the descriptors are counted.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The running sampler; stopped (and joined) when dropped.
pub struct FdSampler {
    /// Dropping it wakes the thread, which then ends.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FdSampler {
    /// Takes a first sample now (so the figure is there before any scrape), then starts the
    /// thread that keeps it fresh.
    pub fn start(metrics: Arc<Metrics>) -> io::Result<FdSampler> {
        metrics.open_fds.store(sys::open_fds(), Ordering::Relaxed);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fd-sampler".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(SAMPLE_INTERVAL) {
                    metrics.open_fds.store(sys::open_fds(), Ordering::Relaxed);
                }
            })?;
        Ok(FdSampler {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for FdSampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampler fills the figure at once and follows descriptors opened after it started;
    /// dropping it stops the thread.
    #[test]
    fn samples_at_start_and_follows_changes() {
        let metrics = Arc::new(Metrics::default());
        let sampler = FdSampler::start(metrics.clone()).unwrap();
        let first = metrics.open_fds.load(Ordering::Relaxed);
        assert!(first >= 3, "stdin, stdout, stderr at least: {first}");
        let files: Vec<std::fs::File> = (0..64)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let deadline = std::time::Instant::now() + SAMPLE_INTERVAL * 20;
        while metrics.open_fds.load(Ordering::Relaxed) < first + 32 {
            assert!(std::time::Instant::now() < deadline, "never resampled");
            std::thread::sleep(SAMPLE_INTERVAL / 10);
        }
        drop(files);
        drop(sampler);
    }

    /// The one-`stat` count and the walk agree (on kernels before 6.2 both are the walk).
    #[test]
    fn stat_and_walk_agree() {
        let files: Vec<std::fs::File> = (0..10)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        assert_eq!(sys::open_fds(), sys::open_fds_by_walk());
        drop(files);
    }
}
