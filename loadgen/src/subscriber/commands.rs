//! The controller's side of a subscriber thread (`impl SubscriberLoop`): taking the commands
//! that arrive on the channel, and carrying out the phase commands (start a phase, end
//! publishing, end a phase and report), including ending the ramp.
//!
//! Separate from `event_loop`, which handles sockets (poll, open, read, close): this file is
//! where the controller's phases meet the thread's connections.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TryRecvError;

use super::Command;
use super::event_loop::SubscriberLoop;
use crate::failure::FailureKind;
use crate::stats::count_error;

/// What to do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Keep running.
    Continue,
    /// Return: shut down, or the controller went away.
    Stop,
}

impl SubscriberLoop {
    /// Carries out every command waiting.
    pub(super) fn take_commands(&mut self) -> Next {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return Next::Stop,
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return Next::Continue,
            }
        }
    }

    /// Carries out a phase command (`Shutdown` is handled by the loop).
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::StartPhase {
                first_seq,
                count,
                ack,
            } => {
                self.end_ramp();
                self.rec.start_phase(&mut self.conns, first_seq, count);
                let _ = ack.send(());
            }
            Command::EndPublishing { count, unowed, ack } => {
                self.rec.end_publishing(&mut self.conns, count, unowed);
                let _ = ack.send(());
            }
            Command::EndPhase { reply } => {
                let report = self.rec.end_phase(&mut self.conns);
                let _ = reply.send(report);
            }
            Command::Shutdown => {}
        }
    }

    /// The ramp is over, finished or not: connections not open now never count. Those never
    /// started and those still opening are `ramp_timeout` failures.
    fn end_ramp(&mut self) {
        let never_opened = self.plan.connections - self.conns.len();
        if never_opened > 0 {
            count_error(
                &mut self.rec.errors,
                FailureKind::RampTimeout,
                never_opened as u64,
            );
            self.rec
                .progress
                .failed
                .fetch_add(never_opened as u64, Relaxed);
            self.plan.connections = self.conns.len();
        }
        for i in 0..self.conns.len() {
            if self.conns[i].state.is_opening() && !self.conns[i].is_reconnecting() {
                self.close(i, FailureKind::RampTimeout);
            }
        }
        // Reconnections keep their deadlines; first opens have none left.
        self.deadlines
            .retain(|&(_, i, _)| self.conns[i].is_reconnecting());
    }
}
