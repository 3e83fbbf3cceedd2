//! [`Network`]: messages in flight between simulated nodes, with per-link faults and
//! partitions.
//!
//! A message's fate is drawn when it is sent: lost (`drop`), delivered once or twice
//! (`duplicate`), after a delay drawn from the link's range (so messages overtake each other),
//! occasionally held back much longer (`reorder`). Partitions act when a message arrives; what a
//! cut link does with it is the network's [`CutMode`]: by default it is lost, including one
//! sent before the cut; with [`CutMode::Queue`] it waits for the link to be restored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use raft_core::{Message, NodeId};

use crate::rng::SimRng;

/// The fault model of one directed link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Shortest delivery delay, in milliseconds.
    pub delay_min: u64,
    /// Longest delivery delay, in milliseconds (inclusive).
    pub delay_max: u64,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back by up to ten times `delay_max`.
    pub reorder: f64,
}

impl Default for LinkFaults {
    /// A perfect link with a 1 ms delay.
    fn default() -> Self {
        LinkFaults { delay_min: 1, delay_max: 1, drop: 0.0, duplicate: 0.0, reorder: 0.0 }
    }
}

/// A message on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// When it was sent (simulated milliseconds).
    pub sent_at: u64,
    /// When it arrives, unless a cut link loses it first.
    pub deliver_at: u64,
    /// The message.
    pub message: Message,
}

impl fmt::Display for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} {} (term {}", self.from, self.to, self.message.kind(), self.message.term())?;
        match &self.message {
            Message::AppendEntries(m) => write!(
                f,
                ", prev {}@{}, {} entries, commit {}",
                m.prev.index,
                m.prev.term,
                m.entries.len(),
                m.commit
            )?,
            Message::AppendResponse(m) => write!(f, ", {:?}", m.result)?,
            Message::VoteResponse(m) => write!(f, ", granted {}", m.granted)?,
            Message::RequestVote(m) => write!(f, ", last log {}@{}", m.last_log.index, m.last_log.term)?,
            Message::InstallSnapshot(m) => {
                write!(f, ", through {}@{}, offset {}", m.meta.last.index, m.meta.last.term, m.offset)?
            }
            _ => {}
        }
        write!(f, ", arrives at {} ms)", self.deliver_at)
    }
}

/// What a cut link does with the messages that cross it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CutMode {
    /// A message crossing a cut link is lost when it arrives, even one sent before the cut.
    /// Raft resends what matters; this is the default.
    #[default]
    Lose,
    /// A message on a cut link is held: it does not arrive while the link is cut, and arrives
    /// at once, in its order, when the link is restored. Dropping messages loses held ones
    /// too; one delivered by hand across a cut link is lost, as in either mode. This is the
    /// queue of the REPL this project descends from (ORIGIN §A).
    Queue,
}

/// Selects messages in flight: by sender, recipient and kind (see [`Message::kind`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only from this node.
    pub from: Option<NodeId>,
    /// Only to this node.
    pub to: Option<NodeId>,
    /// Only of this kind, compared case-insensitively ("AppendEntries", "Heartbeat" …).
    pub kind: Option<String>,
}

impl MessageFilter {
    /// Whether `sent` is selected.
    pub fn matches(&self, sent: &InFlight) -> bool {
        self.from.is_none_or(|f| f == sent.from)
            && self.to.is_none_or(|t| t == sent.to)
            && self.kind.as_ref().is_none_or(|k| kind_matches(k, &sent.message))
    }
}

/// Whether `kind` names the message's kind. "AppendEntries" also covers heartbeats (an
/// AppendEntries without entries), and "RequestVote" also covers pre-votes.
fn kind_matches(kind: &str, message: &Message) -> bool {
    let actual = message.kind();
    let family = match message {
        Message::AppendEntries(_) => "AppendEntries",
        Message::RequestVote(_) => "RequestVote",
        Message::VoteResponse(_) => "VoteResponse",
        _ => actual,
    };
    kind.eq_ignore_ascii_case(actual) || kind.eq_ignore_ascii_case(family)
}

/// The simulated network.
#[derive(Clone, Debug)]
pub struct Network {
    default_faults: LinkFaults,
    links: BTreeMap<(NodeId, NodeId), LinkFaults>,
    cut: BTreeSet<(NodeId, NodeId)>,
    cut_mode: CutMode,
    /// Ordered by arrival time, then by send order.
    in_flight: BTreeMap<(u64, u64), InFlight>,
    next_seq: u64,
    rng: SimRng,
}

impl Network {
    /// A network whose links all follow `faults`, drawing from `rng`.
    pub fn new(faults: LinkFaults, rng: SimRng) -> Self {
        Network {
            default_faults: faults,
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            cut_mode: CutMode::default(),
            in_flight: BTreeMap::new(),
            next_seq: 0,
            rng,
        }
    }

    /// The faults of the link `from -> to`.
    pub fn faults(&self, from: NodeId, to: NodeId) -> LinkFaults {
        self.links.get(&(from, to)).copied().unwrap_or(self.default_faults)
    }

    /// The faults of every link without a setting of its own.
    pub fn default_faults(&self) -> LinkFaults {
        self.default_faults
    }

    /// Sets the faults of every link, forgetting per-link settings.
    pub fn set_all_faults(&mut self, faults: LinkFaults) {
        self.default_faults = faults;
        self.links.clear();
    }

    /// Sets the faults of the link `from -> to`.
    pub fn set_faults(&mut self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.links.insert((from, to), faults);
    }

    /// Puts a message on the wire at `now`, subject to the link's faults.
    pub fn send(&mut self, from: NodeId, to: NodeId, message: Message, now: u64) {
        let faults = self.faults(from, to);
        if self.rng.chance(faults.drop) {
            return;
        }
        if self.rng.chance(faults.duplicate) {
            self.schedule(from, to, message.clone(), now, &faults);
        }
        self.schedule(from, to, message, now, &faults);
    }

    fn schedule(&mut self, from: NodeId, to: NodeId, message: Message, now: u64, faults: &LinkFaults) {
        let mut delay = self.rng.between(faults.delay_min, faults.delay_max);
        if self.rng.chance(faults.reorder) {
            delay += self.rng.between(0, faults.delay_max.max(1) * 10);
        }
        let deliver_at = now + delay;
        self.next_seq += 1;
        let sent = InFlight { from, to, sent_at: now, deliver_at, message };
        self.in_flight.insert((deliver_at, self.next_seq), sent);
    }

    /// The key of the first message that can arrive: held messages wait.
    fn next_key(&self) -> Option<(u64, u64)> {
        self.in_flight.iter().find(|(_, sent)| !self.is_held(sent)).map(|(&key, _)| key)
    }

    /// When the next message arrives (a held message once restored arrives at once: its time
    /// may be past).
    pub fn next_arrival(&self) -> Option<u64> {
        self.next_key().map(|(at, _)| at)
    }

    /// Takes the message that arrives first (held messages wait).
    pub fn pop_next(&mut self) -> Option<InFlight> {
        self.next_key().and_then(|key| self.in_flight.remove(&key))
    }

    /// Takes the messages selected by `filter`, in arrival order; only the first when
    /// `first_only`.
    pub fn take(&mut self, filter: &MessageFilter, first_only: bool) -> Vec<InFlight> {
        let mut keys: Vec<(u64, u64)> =
            self.in_flight.iter().filter(|(_, e)| filter.matches(e)).map(|(&k, _)| k).collect();
        if first_only {
            keys.truncate(1);
        }
        keys.into_iter().filter_map(|k| self.in_flight.remove(&k)).collect()
    }

    /// Messages in flight, in arrival order, held ones included.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.values()
    }

    /// Whether a message from `from` to `to` is lost on arrival.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// What a cut link does with messages.
    pub fn cut_mode(&self) -> CutMode {
        self.cut_mode
    }

    /// Sets what a cut link does with messages. Messages held when switching to
    /// [`CutMode::Lose`] are lost when they arrive, at once.
    pub fn set_cut_mode(&mut self, mode: CutMode) {
        self.cut_mode = mode;
    }

    /// Whether `sent` is held on a cut link, waiting for it to be restored.
    pub fn is_held(&self, sent: &InFlight) -> bool {
        self.cut_mode == CutMode::Queue && self.is_cut(sent.from, sent.to)
    }

    /// Cuts the link `from -> to` (one way).
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Restores the link `from -> to`.
    pub fn connect(&mut self, from: NodeId, to: NodeId) {
        self.cut.remove(&(from, to));
    }

    /// Replaces every cut with a partition: links between nodes of different groups are cut
    /// both ways, links within a group work. Nodes of `all` missing from every group form one
    /// more group.
    pub fn partition(&mut self, groups: &[Vec<NodeId>], all: &[NodeId]) {
        self.heal();
        let group_of = |id: NodeId| groups.iter().position(|g| g.contains(&id)).unwrap_or(groups.len());
        for &a in all {
            for &b in all {
                if a != b && group_of(a) != group_of(b) {
                    self.cut(a, b);
                }
            }
        }
    }

    /// The cut links, as (from, to) pairs.
    pub fn cut_links(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.cut.iter().copied()
    }

    /// Restores every link (faults other than cuts stay).
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_now(term: u64) -> Message {
        Message::TimeoutNow { term }
    }

    #[test]
    fn delays_order_arrivals_and_filters_select() {
        let faults = LinkFaults { delay_min: 1, delay_max: 50, ..LinkFaults::default() };
        let mut net = Network::new(faults, SimRng::new(1));
        for term in 0..20 {
            net.send(1, 2, timeout_now(term), 0);
        }
        net.send(2, 1, timeout_now(99), 0);
        let arrivals: Vec<u64> = net.in_flight().map(|e| e.deliver_at).collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        let terms: Vec<u64> = net.in_flight().map(|e| e.message.term()).collect();
        assert!(terms.windows(2).any(|w| w[0] > w[1]), "random delays reorder messages");
        let back = MessageFilter { from: Some(2), ..MessageFilter::default() };
        assert_eq!(net.take(&back, false).len(), 1);
        let kind = MessageFilter { kind: Some("timeoutnow".into()), ..MessageFilter::default() };
        assert_eq!(net.take(&kind, true).len(), 1);
        assert_eq!(net.in_flight().count(), 19);
    }

    #[test]
    fn drops_and_duplicates_follow_the_link_faults() {
        let mut net = Network::new(LinkFaults::default(), SimRng::new(2));
        net.set_faults(1, 2, LinkFaults { drop: 1.0, ..LinkFaults::default() });
        net.set_faults(2, 1, LinkFaults { duplicate: 1.0, ..LinkFaults::default() });
        net.send(1, 2, timeout_now(1), 0);
        net.send(2, 1, timeout_now(1), 0);
        assert_eq!(net.in_flight().count(), 2);
        assert!(net.in_flight().all(|e| e.from == 2));
    }

    #[test]
    fn partitions_cut_links_between_groups_only() {
        let mut net = Network::new(LinkFaults::default(), SimRng::new(3));
        net.partition(&[vec![1], vec![2]], &[1, 2, 3, 4]);
        assert!(net.is_cut(1, 2) && net.is_cut(2, 1) && net.is_cut(1, 3) && net.is_cut(4, 2));
        assert!(!net.is_cut(3, 4));
        net.heal();
        assert_eq!(net.cut_links().count(), 0);
    }

    #[test]
    fn a_queueing_cut_holds_messages_until_the_link_is_restored() {
        let mut net = Network::new(LinkFaults::default(), SimRng::new(4));
        net.set_cut_mode(CutMode::Queue);
        net.cut(1, 2);
        net.send(1, 2, timeout_now(1), 0);
        net.send(2, 1, timeout_now(2), 5);
        assert_eq!(net.next_arrival(), Some(6), "the message from 1 waits");
        assert_eq!(net.pop_next().map(|e| e.from), Some(2));
        assert_eq!((net.pop_next(), net.in_flight().count()), (None, 1));
        assert!(net.in_flight().all(|e| net.is_held(e)));
        net.connect(1, 2);
        assert_eq!(net.next_arrival(), Some(1), "restored: it arrives at once, in its order");
        assert_eq!(net.pop_next().map(|e| e.message.term()), Some(1));
    }

    #[test]
    fn a_losing_cut_lets_messages_arrive_to_be_lost() {
        let mut net = Network::new(LinkFaults::default(), SimRng::new(5));
        net.cut(1, 2);
        net.send(1, 2, timeout_now(1), 0);
        assert!(!net.in_flight().any(|e| net.is_held(e)));
        assert_eq!(net.pop_next().map(|e| (e.from, e.to)), Some((1, 2)), "the simulator loses it");
    }
}
