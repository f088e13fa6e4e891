//! A leader's proposals of one engine loop, batched: the ledger commands a replica proposes
//! without waiting on their entry (transfers, the protocol's credits, decisions, settlements
//! and acknowledgements, the leader's housekeeping) queue here and go into the log at the top
//! of the next Ready pass as one entry — `Command::Batch` when there are several — so many
//! transfers share one append, one peer message per follower and one apply pass per replica.
//! Tagged commands (an admin caller waits for that very entry) are proposed on their own.
//!
//! A batch lost with a leadership change is lost as any proposal is: its transfers' callers
//! time out and retry under the same id, and the protocol's timers propose again.

use tuma_actors::ledger::{self, Command};

/// Most commands in one entry (a loop that queued more proposes several entries).
pub const BATCH_COMMANDS_MAX: usize = 512;

/// The commands queued since the last flush.
#[derive(Default)]
pub(super) struct Proposals {
    queued: Vec<Command>,
}

impl Proposals {
    pub fn push(&mut self, command: Command) {
        self.queued.push(command);
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Forgets what is queued (this replica no longer leads).
    pub fn clear(&mut self) -> usize {
        let dropped = self.queued.len();
        self.queued.clear();
        dropped
    }

    /// The queued commands as log entries stamped `timestamp_ms`: one command alone, more as
    /// batches of at most [`BATCH_COMMANDS_MAX`]. Each with how many commands it carries.
    pub fn take_entries(&mut self, timestamp_ms: u64) -> Vec<(ledger::Entry, usize)> {
        let mut queued = std::mem::take(&mut self.queued);
        let mut entries = Vec::with_capacity(queued.len().div_ceil(BATCH_COMMANDS_MAX));
        while !queued.is_empty() {
            let rest = queued.split_off(queued.len().min(BATCH_COMMANDS_MAX));
            let chunk = std::mem::replace(&mut queued, rest);
            let count = chunk.len();
            let command = if count == 1 {
                chunk.into_iter().next().expect("one command")
            } else {
                Command::Batch(chunk)
            };
            entries.push((
                ledger::Entry {
                    timestamp_ms,
                    command,
                },
                count,
            ));
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(up_to_seq: u64) -> Command {
        Command::SmsDelivered { up_to_seq }
    }

    #[test]
    fn one_command_is_an_entry_of_its_own_and_more_are_batched_in_order_and_bounded() {
        let mut proposals = Proposals::default();
        assert!(proposals.take_entries(5).is_empty());
        proposals.push(sms(1));
        let entries = proposals.take_entries(5);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.command, sms(1));
        assert_eq!((entries[0].0.timestamp_ms, entries[0].1), (5, 1));
        assert!(proposals.is_empty());
        for seq in 0..(BATCH_COMMANDS_MAX as u64 + 3) {
            proposals.push(sms(seq));
        }
        let entries = proposals.take_entries(9);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].1, BATCH_COMMANDS_MAX);
        assert_eq!(entries[1].1, 3);
        let Command::Batch(first) = &entries[0].0.command else {
            panic!("not a batch")
        };
        assert_eq!(first[0], sms(0));
        assert_eq!(
            first[BATCH_COMMANDS_MAX - 1],
            sms(BATCH_COMMANDS_MAX as u64 - 1)
        );
        let Command::Batch(second) = &entries[1].0.command else {
            panic!("not a batch")
        };
        assert_eq!(second[2], sms(BATCH_COMMANDS_MAX as u64 + 2));
    }
}
