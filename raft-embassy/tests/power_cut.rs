//! Power cuts at every byte of a scripted workload on the flash store.
//!
//! The workload (terms, votes, appends, truncations with and without new entries, snapshots
//! that keep or discard the log, staged in chunks of assorted sizes, snapshot transfers
//! abandoned half-way, enough of them to cycle the flash pages several times) runs
//! on a simulated NOR flash that loses power after `k` programmed or erased bytes, for every
//! `k` from 0 to the workload's total; on odd `k` the byte being written is left half
//! programmed (or half erased). After each cut the store is rebooted from the flash and must
//!
//! * load without error;
//! * have a term no lower than the last acknowledged one, and the same vote within that term;
//! * hold every acknowledged entry (in its log or under its snapshot), except those that the
//!   write in flight was truncating;
//! * hold the previous or the new snapshot, never a mix, never one with a damaged log behind it,
//!   and the previous one while a transfer is only staged;
//! * be exactly a state the acknowledged history plus a prefix of the write in flight allows;
//! * accept and keep new writes.
//!
//! `tests/power_cut_cluster.rs` cuts the power of one node of a three-node cluster at sampled
//! offsets and checks that it reboots from flash, rejoins and converges.

#[path = "../src/sim_flash.rs"]
mod sim_flash;

use std::time::Instant as WallClock;

use futures::executor::block_on;
use raft_core::{
    Bytes, Entry, HardState, Index, LogId, LogState, LogStore, Membership, Payload, SnapshotMeta, Term,
};
use raft_embassy::{FlashLog, FlashLogConfig, FlashLogError};
use sim_flash::{Op, SimError, SimFlash};

const PAGES: usize = 12;
const CAPACITY: u32 = 8;

fn config() -> FlashLogConfig {
    FlashLogConfig {
        range: 0..(PAGES * SimFlash::PAGE) as u32,
        log_capacity: CAPACITY,
        max_item_bytes: 96,
        max_snapshot_bytes: 512,
    }
}

fn bootstrap() -> Membership {
    Membership::new([1, 2, 3])
}

/// One acknowledged-or-not step of the workload.
#[derive(Clone, Debug)]
enum Step {
    HardState(HardState),
    Write(Option<Index>, Vec<Entry>),
    /// A snapshot staged in chunks of the given size, then installed.
    Snapshot(Snapshot, usize),
    /// A snapshot transfer that stops after staging these bytes in chunks of the given size
    /// (the leader changed, or the follower crashed): it must change nothing.
    Abandoned(Bytes, usize),
}

/// A snapshot's description and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    meta: SnapshotMeta,
    data: Bytes,
}

/// What the store must hold: the acknowledged state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Model {
    fn first(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1
    }

    fn last(&self) -> Index {
        self.entries.last().map_or(self.first() - 1, |e| e.index)
    }

    fn truncated(&self, from: Option<Index>) -> Model {
        let mut model = self.clone();
        if let Some(from) = from {
            model.entries.retain(|e| e.index < from);
        }
        model
    }

    fn after(&self, step: &Step) -> Model {
        let mut model = self.clone();
        match step {
            Step::HardState(h) => model.hard_state = *h,
            Step::Write(from, entries) => {
                model = model.truncated(*from);
                model.entries.extend(entries.iter().cloned());
            }
            Step::Abandoned(..) => {}
            Step::Snapshot(s, _) => {
                let last = s.meta.last;
                // Raft §7: keep the log only if it holds the snapshot's last entry.
                if model.entries.iter().any(|e| e.id() == last) {
                    model.entries.retain(|e| e.index > last.index);
                } else {
                    model.entries.clear();
                }
                model.snapshot = Some(s.clone());
            }
        }
        model
    }

    /// The states a reboot may find when `step` was in flight.
    fn allowed(&self, step: Option<&Step>) -> Vec<Model> {
        let mut allowed = vec![self.clone()];
        match step {
            Some(Step::Write(from, entries)) => {
                let truncated = self.truncated(*from);
                for n in 0..=entries.len() {
                    let mut model = truncated.clone();
                    model.entries.extend(entries[..n].iter().cloned());
                    allowed.push(model);
                }
            }
            Some(step) => allowed.push(self.after(step)),
            None => {}
        }
        allowed
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn entry(term: Term, index: Index, rng: &mut Rng) -> Entry {
    let len = rng.below(40) as usize;
    let payload =
        if len < 3 { Payload::Noop } else { Payload::Command(Bytes::from(vec![index as u8; len]).into()) };
    Entry { term, index, payload }
}

fn snapshot_data(index: Index, rng: &mut Rng) -> Bytes {
    let len = rng.below(300) as usize;
    (0..len).map(|i| (i as u64 * 31 + index) as u8).collect::<Vec<u8>>().into()
}

/// The scripted workload: valid Raft storage calls, each kind many times.
fn workload() -> Vec<Step> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Model::default();
    let mut steps = Vec::new();
    let mut term = 0;
    let push = |step: Step, model: &mut Model, steps: &mut Vec<Step>| {
        *model = model.after(&step);
        steps.push(step);
    };
    for round in 0..48 {
        if round % 4 == 0 {
            term += 1;
            push(Step::HardState(HardState { term, vote: None }), &mut model, &mut steps);
            push(Step::HardState(HardState { term, vote: Some(1 + round % 3) }), &mut model, &mut steps);
        }
        match rng.below(6) {
            // A truncation that replaces the tail (a new leader's entries).
            0 if model.last() >= model.first() => {
                let from = model.first() + rng.below(model.last() - model.first() + 1);
                let entries: Vec<Entry> =
                    (from..from + 1 + rng.below(2)).map(|i| entry(term, i, &mut rng)).collect();
                push(Step::Write(Some(from), entries), &mut model, &mut steps);
            }
            // A truncation alone.
            1 if model.last() >= model.first() => {
                push(Step::Write(Some(model.last()), vec![]), &mut model, &mut steps);
            }
            // A snapshot the leader installs: past the log, or contradicting it.
            2 => {
                let index = model.first() + rng.below(model.last() - model.first() + 3);
                let last = LogId::new(term, index);
                let meta = SnapshotMeta { last, membership: bootstrap() };
                let snapshot = Snapshot { meta, data: snapshot_data(index, &mut rng) };
                let chunk = 1 + rng.below(200) as usize;
                push(Step::Snapshot(snapshot, chunk), &mut model, &mut steps);
            }
            // A transfer abandoned half-way.
            3 if round % 2 == 0 => {
                let chunk = 1 + rng.below(120) as usize;
                push(Step::Abandoned(snapshot_data(round, &mut rng), chunk), &mut model, &mut steps);
            }
            _ => {}
        }
        // Appends, compacting first (a snapshot the node takes) when the window is full.
        let count = 1 + rng.below(3);
        if model.entries.len() as u64 + count > u64::from(CAPACITY) {
            let covered = model.entries[model.entries.len() / 2].id();
            let meta = SnapshotMeta { last: covered, membership: bootstrap() };
            let snapshot = Snapshot { meta, data: snapshot_data(covered.index, &mut rng) };
            // The state machine writes its snapshot in one piece.
            let chunk = snapshot.data.len().max(1);
            push(Step::Snapshot(snapshot, chunk), &mut model, &mut steps);
        }
        let next = model.last() + 1;
        let entries: Vec<Entry> = (next..next + count).map(|i| entry(term, i, &mut rng)).collect();
        push(Step::Write(None, entries), &mut model, &mut steps);
    }
    steps
}

/// Stages `data` in chunks of `chunk` bytes (an empty snapshot still begins at offset 0).
async fn stage(
    log: &mut FlashLog<SimFlash>,
    data: &[u8],
    chunk: usize,
) -> Result<(), FlashLogError<SimError>> {
    log.write_snapshot_chunk(0, &data[..chunk.min(data.len())]).await?;
    for (n, piece) in data.chunks(chunk).enumerate().skip(1) {
        log.write_snapshot_chunk((n * chunk) as u64, piece).await?;
    }
    Ok(())
}

async fn run(log: &mut FlashLog<SimFlash>, step: &Step) -> Result<(), FlashLogError<SimError>> {
    match step {
        Step::HardState(h) => log.save_hard_state(*h).await,
        Step::Write(from, entries) => log.write_log(*from, entries).await,
        Step::Snapshot(s, chunk) => {
            stage(log, &s.data, *chunk).await?;
            log.install_snapshot(&s.meta).await
        }
        Step::Abandoned(data, chunk) => stage(log, data, *chunk).await,
    }
}

/// What a reboot finds: the loaded state, and the log and snapshot it describes, read back.
struct Restored {
    state: LogState,
    model: Model,
}

fn read_back(log: &mut FlashLog<SimFlash>) -> Result<Restored, FlashLogError<SimError>> {
    block_on(async {
        let state = log.load().await?;
        let snapshot = match &state.snapshot {
            Some(info) => {
                let data = log.read_snapshot(0, info.size as usize).await?;
                assert_eq!(data.len() as u64, info.size, "read_snapshot returns the whole snapshot");
                Some(Snapshot { meta: info.meta.clone(), data })
            }
            None => None,
        };
        let first = snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1;
        let entries =
            if state.last_index >= first { log.read_entries(first, state.last_index).await? } else { vec![] };
        Ok(Restored { model: Model { hard_state: state.hard_state, snapshot, entries }, state })
    })
}

fn reboot(flash: &SimFlash) -> (FlashLog<SimFlash>, Restored) {
    flash.power_on();
    let mut log = FlashLog::new(flash.clone(), config(), bootstrap()).unwrap();
    match read_back(&mut log) {
        Ok(restored) => (log, restored),
        Err(error) => {
            let chip = flash.chip();
            let (erase, at, len) = chip.last_op;
            let page = &chip.bytes[at / 256 * 256..][..256];
            panic!(
                "the store does not load after a power cut after {} bytes (torn {}) in {} of {len} bytes at {at}: {error}\npage: {page:02x?}",
                chip.spent, chip.torn, if erase { "an erase" } else { "a write" }
            )
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    offsets: u64,
    torn: u64,
    restarts: u64,
    checks: u64,
    in_flight: [u64; 5],
}

impl Tally {
    fn check(&mut self, ok: bool, what: &str, k: u64, context: &dyn std::fmt::Debug) {
        self.checks += 1;
        assert!(ok, "power cut after {k} bytes: {what}\n{context:#?}");
    }
}

/// Runs the whole workload once, recording every program and erase. Returns the operations
/// and, for the first load and each step, the bytes of work done when it returned.
fn record(steps: &[Step]) -> (Vec<Op>, Vec<u64>, Model) {
    let flash = SimFlash::new(PAGES);
    flash.chip().recording = Some(Vec::new());
    let mut log = FlashLog::new(flash.clone(), config(), bootstrap()).unwrap();
    block_on(log.load()).unwrap();
    let mut ends = vec![flash.spent()];
    let mut model = Model::default();
    for step in steps {
        block_on(run(&mut log, step)).unwrap();
        model = model.after(step);
        ends.push(flash.spent());
    }
    assert_eq!(reboot(&flash).1.model, model);
    assert_eq!(flash.chip().rewrites, 0, "no word is programmed twice");
    let ops = flash.chip().recording.take().unwrap();
    (ops, ends, model)
}

/// A power cut after `k` bytes of work is the recorded run's first `k` bytes: the code is
/// deterministic, so the flash image at the cut is replayed from the recording rather than
/// by running the workload again.
#[test]
fn every_power_cut_leaves_a_state_raft_allows() {
    let steps = workload();
    let started = WallClock::now();
    let (ops, ends, _) = record(&steps);
    let total = *ends.last().unwrap();
    assert!(total > 4 * (PAGES * SimFlash::PAGE) as u64, "the workload cycles the pages: {total} bytes");

    let mut tally = Tally::default();
    let mut image = vec![0xff; PAGES * SimFlash::PAGE];
    let (mut op, mut within) = (0, 0);
    let mut acked = Model::default();
    let mut next_step = 0;
    for k in 0..total {
        while op < ops.len() && within == ops[op].len() {
            (op, within) = (op + 1, 0);
        }
        while next_step < steps.len() && ends[next_step + 1] <= k {
            acked = acked.after(&steps[next_step]);
            next_step += 1;
        }
        let step = (ends[0] <= k).then(|| &steps[next_step]);
        let torn = k % 2 == 1;
        let mut cut = image.clone();
        if torn {
            ops[op].apply_byte(&mut cut, within, true);
        }
        ops[op].apply_byte(&mut image, within, false);
        within += 1;

        let flash = SimFlash::with_bytes(cut);
        tally.offsets += 1;
        tally.torn += u64::from(torn);
        tally.in_flight[match step {
            None => 0,
            Some(Step::HardState(_)) => 1,
            Some(Step::Write(..)) => 2,
            Some(Step::Snapshot(..)) => 3,
            Some(Step::Abandoned(..)) => 4,
        }] += 1;

        let (mut log, restored) = reboot(&flash);
        tally.restarts += 1;
        let found = restored.model.clone();
        let context = (&acked, step, &found);
        let (a, f) = (acked.hard_state, found.hard_state);
        tally.check(f.term >= a.term, "the term went back", k, &context);
        tally.check(
            f.term != a.term || a.vote.is_none() || f.vote == a.vote,
            "the vote was forgotten",
            k,
            &context,
        );
        tally.check(
            restored.state.bootstrap == bootstrap(),
            "the bootstrap configuration changed",
            k,
            &context,
        );

        // Acknowledged entries: present, unless the write in flight truncates them or the
        // snapshot in flight (now committed) discards them.
        let kept_below = match step {
            Some(Step::Write(Some(from), _)) => *from,
            Some(Step::Snapshot(s, _)) if found.snapshot.as_ref() == Some(s) => s.meta.last.index + 1,
            _ => Index::MAX,
        };
        let covered = found.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        let present = acked
            .entries
            .iter()
            .filter(|e| e.index < kept_below && e.index > covered)
            .all(|e| found.entries.contains(e));
        tally.check(present, "an acknowledged entry is missing", k, &context);

        let snapshots: Vec<Option<&Snapshot>> = match step {
            Some(Step::Snapshot(s, _)) => vec![acked.snapshot.as_ref(), Some(s)],
            _ => vec![acked.snapshot.as_ref()],
        };
        tally.check(
            snapshots.contains(&found.snapshot.as_ref()),
            "the snapshot is neither old nor new",
            k,
            &context,
        );
        tally.check(acked.allowed(step).contains(&found), "a state the history does not allow", k, &context);

        // The store works again: a new term and an appended entry survive another reboot.
        let term = found.hard_state.term + 1;
        let next = found.entries.last().map_or(covered, |e| e.index) + 1;
        let appended = Entry { term, index: next, payload: Payload::Noop };
        let rewritten = block_on(async {
            log.save_hard_state(HardState { term, vote: Some(2) }).await?;
            let from = (found.entries.len() as u32 >= CAPACITY).then(|| next - 1);
            let appended = Entry { index: from.unwrap_or(next), ..appended.clone() };
            log.write_log(from, &[appended]).await
        });
        tally.check(rewritten.is_ok(), "the store refuses writes after the cut", k, &(context, &rewritten));
        let again = reboot(&flash).1.model;
        tally.check(
            again.hard_state.term == term && again.entries.last().is_some_and(|e| e.term == term),
            "writes after the cut did not survive a reboot",
            k,
            &(context, &again),
        );
    }
    let elapsed = started.elapsed();
    println!(
        "power cuts: {} offsets of {total} bytes ({} with a torn byte), {} restarts, {} invariant checks, \
         in flight: {} first load, {} term/vote, {} log writes, {} snapshots, {} abandoned transfers; {} steps; \
         {:.1} s",
        tally.offsets,
        tally.torn,
        tally.restarts,
        tally.checks,
        tally.in_flight[0],
        tally.in_flight[1],
        tally.in_flight[2],
        tally.in_flight[3],
        tally.in_flight[4],
        steps.len(),
        elapsed.as_secs_f64()
    );
}
