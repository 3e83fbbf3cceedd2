//! Log compaction (Raft §7): when to snapshot, and dropping the covered log.

use super::Node;
use crate::event::{DropReason, Event};
use crate::types::{LogId, Snapshot, SnapshotMeta};

impl Node {
    /// Asks the driver for a snapshot at the applied index (policy or [`Incoming::Compact`]).
    ///
    /// [`Incoming::Compact`]: crate::Incoming::Compact
    pub(super) fn request_snapshot(&mut self) {
        if self.applied <= self.log.snapshot_id().index || self.ready.take_snapshot.is_some() {
            return;
        }
        let Some(term) = self.log.term_at(self.applied) else { return };
        let membership = if self.membership_index <= self.applied {
            self.membership.clone()
        } else {
            self.log
                .membership_at(self.applied)
                .map_or_else(|| self.base_membership.clone(), |(_, m)| m.clone())
        };
        self.ready.take_snapshot = Some(SnapshotMeta { last: LogId::new(term, self.applied), membership });
    }

    /// Reports a snapshot the driver took for [`Ready::take_snapshot`](crate::Ready): the log
    /// up to its last index is dropped, and it is kept to send to followers that fall behind.
    pub fn snapshot_taken(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last;
        if last.index <= self.log.snapshot_id().index || last.index > self.applied || !self.log.matches(last)
        {
            return self.dropped(self.id, DropReason::Unexpected);
        }
        self.log.compact(last);
        // Configuration entries at or below `last` left the window: the snapshot now carries
        // the configuration in force there, for when a truncation empties the window of them.
        self.base_membership = snapshot.meta.membership.clone();
        self.snapshot = Some(snapshot);
        self.ready.events.push(Event::Compacted { through: last.index });
    }

    /// Runs after entries are handed out for applying.
    pub(super) fn after_apply(&mut self) {
        self.after_membership_commit();
        let every = self.config.snapshot_every;
        if every > 0 && self.applied - self.log.snapshot_id().index >= every {
            self.request_snapshot();
        }
    }
}
