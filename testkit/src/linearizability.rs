//! A linearizability checker in the style of Wing & Gong with Lowe's memoization, as in
//! Porcupine: depth-first search over the order in which concurrent operations take effect,
//! with a cache of (set of operations done, model state) pairs already explored.
//!
//! Operations that never returned (their node crashed, or the client gave up) may take effect
//! at any time after their invocation, or never. [`check_kv`] splits a [`History`] by key
//! (linearizability is compositional) and checks each key as a register.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::Hash;

use raft_core::Bytes;

use crate::history::{History, OpKind, OpOutcome};
use crate::kv::split_command;

/// A sequential specification.
pub trait Model {
    /// The model's state.
    type State: Clone + Eq + Hash;
    /// What an operation asks.
    type Input;
    /// What an operation answers.
    type Output;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`. Returns the next state if the operation could have
    /// answered `output` (`None` when the answer is unknown), or `None` if it could not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a concurrent history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<I, O> {
    /// What was asked.
    pub input: I,
    /// What was answered; `None` if no answer came.
    pub output: Option<O>,
    /// When it was invoked.
    pub call: u64,
    /// When it returned; `None` if it never did (it may take effect at any later time).
    pub ret: Option<u64>,
}

/// The verdict of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every answer.
    Linearizable,
    /// No order does.
    NotLinearizable,
    /// The search gave up after exploring its budget of states.
    Unknown,
}

/// States explored per check before giving up with [`Verdict::Unknown`].
const SEARCH_BUDGET: usize = 2_000_000;

#[derive(Clone, Copy, Debug)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    matching: usize,
    prev: usize,
    next: Option<usize>,
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// ```
/// use testkit::linearizability::{check, Op, Register, Verdict};
/// let put = |v: &str, call, ret| Op { input: Some(v.to_string()), output: None, call, ret: Some(ret) };
/// let get = |v: &str, call, ret| Op { input: None, output: Some(Some(v.to_string())), call, ret: Some(ret) };
/// // A read that overlaps a write may see either value.
/// assert_eq!(check(&Register, &[put("a", 0, 10), get("a", 5, 6)]), Verdict::Linearizable);
/// // A read after the write completed must see it.
/// assert_eq!(check(&Register, &[put("a", 0, 1), get("b", 5, 6)]), Verdict::NotLinearizable);
/// ```
pub fn check<M: Model>(model: &M, history: &[Op<M::Input, M::Output>]) -> Verdict {
    let mut events = linked_events(history);
    let head = events.len() - 1;
    let mut done = vec![0u64; history.len().div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut cursor = events[head].next;
    let mut explored = 0;
    while events[head].next.is_some() {
        explored += 1;
        if explored > SEARCH_BUDGET {
            return Verdict::Unknown;
        }
        // The list always ends with a return event, so the cursor never runs off its end.
        let Some(at) = cursor else { return Verdict::NotLinearizable };
        let event = events[at];
        let (word, bit) = (event.op / 64, 1u64 << (event.op % 64));
        if event.is_call {
            let op = &history[event.op];
            if let Some(next_state) = model.step(&state, &op.input, op.output.as_ref()) {
                done[word] |= bit;
                if cache.insert((done.clone(), next_state.clone())) {
                    calls.push((at, state));
                    state = next_state;
                    lift(&mut events, at);
                    cursor = events[head].next;
                    continue;
                }
                done[word] &= !bit;
            }
            cursor = event.next;
        } else {
            // A return whose call is not linearized yet: undo the latest choice.
            let Some((call_at, previous)) = calls.pop() else {
                return Verdict::NotLinearizable;
            };
            state = previous;
            let op = events[call_at].op;
            done[op / 64] &= !(1u64 << (op % 64));
            unlift(&mut events, call_at);
            cursor = events[call_at].next;
        }
    }
    Verdict::Linearizable
}

/// The history as a doubly linked list of call and return events in time order, with a
/// head sentinel at the last index. Calls sort before returns at equal times, and operations
/// that never returned return after everything else.
fn linked_events<I, O>(history: &[Op<I, O>]) -> Vec<Event> {
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
    for (op, o) in history.iter().enumerate() {
        order.push((o.call, false, op));
        order.push((o.ret.unwrap_or(u64::MAX), true, op));
    }
    order.sort();
    let mut position = vec![[0usize; 2]; history.len()];
    for (i, &(_, is_return, op)) in order.iter().enumerate() {
        position[op][usize::from(is_return)] = i;
    }
    let head = order.len();
    let mut events: Vec<Event> = order
        .iter()
        .enumerate()
        .map(|(i, &(_, is_return, op))| Event {
            op,
            is_call: !is_return,
            matching: position[op][1],
            prev: if i == 0 { head } else { i - 1 },
            next: (i + 1 < order.len()).then_some(i + 1),
        })
        .collect();
    events.push(Event {
        op: usize::MAX,
        is_call: false,
        matching: 0,
        prev: head,
        next: (head > 0).then_some(0),
    });
    events
}

/// Removes a call and its return from the list.
fn lift(events: &mut [Event], call: usize) {
    for at in [call, events[call].matching] {
        let Event { prev, next, .. } = events[at];
        events[prev].next = next;
        if let Some(next) = next {
            events[next].prev = prev;
        }
    }
}

/// Puts back a call and its return, in the reverse order of [`lift`].
fn unlift(events: &mut [Event], call: usize) {
    for at in [events[call].matching, call] {
        let Event { prev, next, .. } = events[at];
        events[prev].next = Some(at);
        if let Some(next) = next {
            events[next].prev = at;
        }
    }
}

/// A read/write register that starts empty: input `Some(v)` writes `v`, input `None` reads;
/// a read's output is the value it saw (`None` if empty). Writes answer nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

impl Model for Register {
    type State = Option<String>;
    type Input = Option<String>;
    type Output = Option<String>;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State> {
        match input {
            Some(value) => Some(Some(value.clone())),
            None => match output {
                Some(seen) if seen != state => None,
                _ => Some(state.clone()),
            },
        }
    }
}

/// A key whose operations admit no linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The key.
    pub key: String,
    /// Its operations: (invoked, returned, description).
    pub ops: Vec<String>,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the operations on key {:?} are not linearizable:", self.key)?;
        for op in &self.ops {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// One key's operations as register operations, with a description of each for reports.
type KeyHistory = (Vec<Op<Option<String>, Option<String>>>, Vec<String>);

/// The result of [`check_kv`]: keys the search gave up on, or the first key that fails.
pub type KvVerdict = Result<Vec<String>, NotLinearizable>;

/// Checks the [`KvStore`](crate::KvStore) operations of `history` key by key: proposals are
/// writes, reads are reads. Writes that certainly had no effect
/// ([`OpOutcome::had_no_effect`]) are left out; other unanswered or failed writes may have
/// taken effect at any time after their invocation; reads without an answer are left out.
///
/// Returns the keys whose check ran out of budget (normally none).
pub fn check_kv(history: &History) -> KvVerdict {
    let mut per_key: BTreeMap<Bytes, KeyHistory> = BTreeMap::new();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for op in history.ops() {
        let ret = op.completed.map(|s| s.seq);
        let (key, entry) = match (&op.kind, &op.outcome) {
            (OpKind::Propose { command }, OpOutcome::Committed { .. }) => {
                let (key, value) = split_command(command);
                (key, Op { input: Some(text(&value)), output: None, call: op.invoked.seq, ret })
            }
            (OpKind::Propose { command }, outcome) if !outcome.had_no_effect() => {
                let (key, value) = split_command(command);
                (key, Op { input: Some(text(&value)), output: None, call: op.invoked.seq, ret: None })
            }
            (OpKind::Read { query }, OpOutcome::Value(value)) => {
                let seen = (!value.is_empty()).then(|| text(value));
                (query.clone(), Op { input: None, output: Some(seen), call: op.invoked.seq, ret })
            }
            _ => continue,
        };
        let (ops, descriptions) = per_key.entry(key).or_default();
        let returned = entry.ret.map_or("never".to_string(), |r| r.to_string());
        descriptions.push(format!(
            "[{} .. {}] {:?} on node {}: {}",
            entry.call, returned, op.kind, op.node, op.outcome
        ));
        ops.push(entry);
    }
    let mut unknown = Vec::new();
    for (key, (ops, descriptions)) in per_key {
        match check(&Register, &ops) {
            Verdict::Linearizable => {}
            Verdict::Unknown => unknown.push(text(&key)),
            Verdict::NotLinearizable => return Err(NotLinearizable { key: text(&key), ops: descriptions }),
        }
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    type RegisterOp = Op<Option<String>, Option<String>>;

    fn put(value: &str, call: u64, ret: Option<u64>) -> RegisterOp {
        Op { input: Some(value.into()), output: None, call, ret }
    }

    fn get(seen: Option<&str>, call: u64, ret: u64) -> RegisterOp {
        Op { input: None, output: Some(seen.map(Into::into)), call, ret: Some(ret) }
    }

    #[test]
    fn sequential_histories() {
        let ok = [put("a", 0, Some(1)), get(Some("a"), 2, 3), put("b", 4, Some(5)), get(Some("b"), 6, 7)];
        assert_eq!(check(&Register, &ok), Verdict::Linearizable);
        let stale = [put("a", 0, Some(1)), put("b", 2, Some(3)), get(Some("a"), 4, 5)];
        assert_eq!(check(&Register, &stale), Verdict::NotLinearizable);
        assert_eq!(check(&Register, &[get(None, 0, 1)]), Verdict::Linearizable);
        assert_eq!(check(&Register, &[get(Some("x"), 0, 1)]), Verdict::NotLinearizable);
        assert_eq!(check::<Register>(&Register, &[]), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_writes_may_take_effect_in_either_order() {
        // Two overlapping writes, then reads that see b and never a again.
        let ok =
            [put("a", 0, Some(10)), put("b", 1, Some(9)), get(Some("a"), 11, 12), get(Some("a"), 13, 14)];
        assert_eq!(check(&Register, &ok), Verdict::Linearizable);
        let flip_flop =
            [put("a", 0, Some(10)), put("b", 1, Some(9)), get(Some("a"), 11, 12), get(Some("b"), 13, 14)];
        assert_eq!(check(&Register, &flip_flop), Verdict::NotLinearizable);
    }

    #[test]
    fn reads_overlapping_a_write_must_agree_on_its_moment() {
        // Porcupine's classic: once a concurrent read has seen the new value, a later read
        // cannot see the old one.
        let ok = [put("1", 0, Some(100)), get(None, 10, 20), get(Some("1"), 30, 40), get(Some("1"), 50, 60)];
        assert_eq!(check(&Register, &ok), Verdict::Linearizable);
        let bad = [put("1", 0, Some(100)), get(Some("1"), 10, 20), get(None, 30, 40)];
        assert_eq!(check(&Register, &bad), Verdict::NotLinearizable);
    }

    #[test]
    fn writes_that_never_returned_may_happen_late_or_never() {
        let late = [put("a", 0, Some(1)), put("b", 2, None), get(Some("a"), 3, 4), get(Some("b"), 10, 11)];
        assert_eq!(check(&Register, &late), Verdict::Linearizable);
        let never = [put("a", 0, Some(1)), put("b", 2, None), get(Some("a"), 3, 4)];
        assert_eq!(check(&Register, &never), Verdict::Linearizable);
        let before_invocation = [put("b", 5, None), get(Some("b"), 0, 1)];
        assert_eq!(check(&Register, &before_invocation), Verdict::NotLinearizable);
        let back_in_time =
            [put("a", 0, Some(1)), put("b", 2, None), get(Some("b"), 3, 4), get(Some("a"), 5, 6)];
        assert_eq!(check(&Register, &back_in_time), Verdict::NotLinearizable);
    }

    #[test]
    fn many_concurrent_operations_stay_fast_thanks_to_the_cache() {
        // 12 overlapping writes and a read that sees the last one written by value.
        let mut ops: Vec<RegisterOp> = (0..12).map(|i| put(&i.to_string(), i, Some(100 + i))).collect();
        ops.push(get(Some("5"), 200, 201));
        assert_eq!(check(&Register, &ops), Verdict::Linearizable);
        ops.push(get(Some("6"), 202, 203));
        ops.push(get(Some("5"), 204, 205));
        assert_eq!(check(&Register, &ops), Verdict::NotLinearizable);
    }
}
