//! The `fanout` measurement: open N subscribers, publish E events on a fixed schedule, wait for
//! the drain, count what arrived, and measure memory and CPU on both sides; optionally search
//! for the highest event rate delivered without loss.
//!
//! - [`settings`]: what a run is configured by, its validation, the requests it sends.
//! - [`run`]: one run from start to end: ramp, memory readings, main phase, shutdown.
//! - `phase`: the subscriber groups and publisher of a run, and one phase on them.
//! - [`progress`]: the progress line on a terminal, or plain periodic lines otherwise.
//! - [`rate_search`]: the search phases and the pure next-rate rule.
//! - [`overload`]: the overload phase (`--overload`): a closed-loop burst and its delivery.
//! - [`report`]: the run's result ([`FanoutReport`]) and whether it measured anything.
//! - [`figures`]: how the report's figures follow from what the run measured.
//! - [`print`](mod@print): the human report.

pub mod figures;
pub mod overload;
mod phase;
pub mod print;
pub mod progress;
pub mod rate_search;
pub mod report;
pub mod run;
pub mod settings;

pub use overload::OverloadReport;
pub use print::print_report;
pub use report::{FanoutReport, FanoutRun, SearchPhase};
pub use run::run_fanout;
pub use settings::{FanoutSettings, publish_urls_for, subscribe_request};
