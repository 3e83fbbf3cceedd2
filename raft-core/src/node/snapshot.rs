//! Log compaction (Raft §7): when to snapshot, and dropping the covered log.

use super::Node;
use crate::event::{DropReason, Event};
use crate::types::{Index, LogId, SnapshotInfo, SnapshotMeta};

impl Node {
    /// Asks for a snapshot (policy or [`Incoming::Compact`]); [`Node::take_ready`] turns the
    /// request into [`Ready::take_snapshot`](crate::Ready) once it knows what is applied.
    ///
    /// [`Incoming::Compact`]: crate::Incoming::Compact
    pub(super) fn request_snapshot(&mut self) {
        self.ready.snapshot_wanted = true;
    }

    /// The snapshot to take now: exactly at the applied index, which the `Ready` being built
    /// brings the state machine to. `None` when nothing new is applied since the last one.
    pub(super) fn snapshot_to_take(&mut self) -> Option<SnapshotMeta> {
        if !core::mem::take(&mut self.ready.snapshot_wanted) || self.applied <= self.log.snapshot_id().index {
            return None;
        }
        if self.incoming_snapshot.is_some() {
            // The log store stages one snapshot at a time, and the leader's is on its way: it
            // will compact the log when installed. (Not deferred: a node receiving a snapshot
            // is behind and applies nothing new until it is installed.)
            return None;
        }
        let term = self.log.term_at(self.applied)?;
        let membership = if self.membership_index <= self.applied {
            self.membership.clone()
        } else {
            self.log
                .membership_at(self.applied)
                .map_or_else(|| self.base_membership.clone(), |(_, m)| m.clone())
        };
        Some(SnapshotMeta { last: LogId::new(term, self.applied), membership })
    }

    /// Reports a snapshot the driver took for [`Ready::take_snapshot`](crate::Ready) and stored
    /// in the log store: the log up to its last index is dropped, and the snapshot is sent to
    /// followers that fall behind.
    pub fn snapshot_taken(&mut self, snapshot: SnapshotInfo) {
        let last = snapshot.meta.last;
        if last.index <= self.log.snapshot_id().index || last.index > self.applied || !self.log.matches(last)
        {
            return self.dropped(self.id, DropReason::Unexpected);
        }
        self.log.compact(last);
        self.applied_bytes = self.bytes_applied_after(last.index);
        // Configuration entries at or below `last` left the window: the snapshot now carries
        // the configuration in force there, for when a truncation empties the window of them.
        self.base_membership = snapshot.meta.membership.clone();
        self.snapshot = Some(snapshot);
        self.ready.events.push(Event::Compacted { through: last.index });
    }

    /// Adds the entries after `applied` up to `to`, about to be handed out for applying, to
    /// the bytes the snapshot policy counts.
    pub(super) fn count_applied_bytes(&mut self, to: Index) {
        let bytes = self.policy_bytes(self.applied.saturating_add(1), to);
        self.applied_bytes = self.applied_bytes.saturating_add(bytes);
    }

    /// The bytes the snapshot policy counts for the applied entries in the window after
    /// `index`.
    pub(super) fn bytes_applied_after(&self, index: Index) -> u64 {
        self.policy_bytes(index.saturating_add(1), self.applied)
    }

    /// The size hints of the entries in `[from, to]` of the window; 0 (and nothing read) when
    /// the policy does not count bytes.
    fn policy_bytes(&self, from: Index, to: Index) -> u64 {
        if self.config.snapshot_log_percent == 0 {
            return 0;
        }
        self.log.slice(from, to).iter().map(|entry| entry.size_hint() as u64).sum()
    }

    /// Runs after entries are handed out for applying: the snapshot policy
    /// ([`Config::snapshot_every`], [`Config::snapshot_log_percent`]).
    ///
    /// [`Config::snapshot_every`]: crate::Config::snapshot_every
    /// [`Config::snapshot_log_percent`]: crate::Config::snapshot_log_percent
    pub(super) fn after_apply(&mut self) {
        self.after_membership_commit();
        let every = self.config.snapshot_every;
        if every == 0 || self.applied - self.log.snapshot_id().index < every {
            return;
        }
        let state = self.snapshot.as_ref().map_or(0, |s| s.size);
        if self.applied_bytes.saturating_mul(100) >= state.saturating_mul(self.config.snapshot_log_percent) {
            self.request_snapshot();
        }
    }
}
