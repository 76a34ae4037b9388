//! What a run is doing, shown while it runs: one line redrawn in place on a terminal, or, when
//! stderr is a file or a pipe, a plain line every few seconds and at the end of each step, so a
//! stalled run says where it stalls.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a terminal's line is redrawn.
const TERMINAL_EVERY: Duration = Duration::from_millis(100);
/// How often a plain line is written while a step runs.
const LINES_EVERY: Duration = Duration::from_secs(2);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// Nowhere (`--quiet`).
    Off,
    /// One line on a terminal, redrawn in place.
    Terminal,
    /// Plain lines `sse-loadgen: STEP: ...`, for logs.
    Lines,
}

impl ProgressStyle {
    /// The style for this process: off when quiet, else by whether stderr is a terminal.
    pub fn for_stderr(quiet: bool) -> ProgressStyle {
        if quiet {
            ProgressStyle::Off
        } else if std::io::stderr().is_terminal() {
            ProgressStyle::Terminal
        } else {
            ProgressStyle::Lines
        }
    }
}

/// The progress of the current step (the ramp, a phase).
#[derive(Debug)]
pub struct ProgressLine {
    /// Where it goes.
    style: ProgressStyle,
    /// When the step started.
    started: Instant,
    /// When progress was last shown.
    shown: Instant,
}

impl ProgressLine {
    /// Progress shown in `style`.
    pub fn new(style: ProgressStyle) -> ProgressLine {
        let now = Instant::now();
        ProgressLine {
            style,
            started: now,
            shown: now,
        }
    }

    /// A new step starts now.
    pub fn start(&mut self) {
        self.started = Instant::now();
        self.shown = self.started;
    }

    /// Shows the step's state, from `text`, when it is due.
    pub fn tick(&mut self, step: &str, text: impl FnOnce() -> String) {
        let every = match self.style {
            ProgressStyle::Off => return,
            ProgressStyle::Terminal => TERMINAL_EVERY,
            ProgressStyle::Lines => LINES_EVERY,
        };
        if self.shown.elapsed() >= every {
            self.show(step, &text());
        }
    }

    /// The step ended: shows its final state.
    pub fn end(&mut self, step: &str, text: &str) {
        if self.style == ProgressStyle::Off {
            return;
        }
        self.show(step, text);
        if self.style == ProgressStyle::Terminal {
            eprintln!();
        }
    }

    /// Writes one progress line.
    fn show(&mut self, step: &str, text: &str) {
        self.shown = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        match self.style {
            ProgressStyle::Off => {}
            ProgressStyle::Terminal => eprint!("\r  {step}: {text}, {secs:.1} s    "),
            ProgressStyle::Lines => eprintln!("sse-loadgen: {step}: {text}, {secs:.1} s"),
        }
    }
}
