//! Our linearizability checker agrees with porcupine (porcupine-rs), the reference checker,
//! on randomly generated register histories: both say "linearizable" or both say not.

use porcupine_rs::{check_operations, Model as PorcupineModel, Operation};
use proptest::prelude::*;
use testkit::linearizability::{check, Op, Register, Verdict};

/// The register as porcupine models it: writes replace the value, reads must see it.
#[derive(Clone)]
struct PorcupineRegister;

#[derive(Clone, Debug)]
enum RegisterOp {
    Write(u8),
    Read(Option<u8>),
}

impl PorcupineModel for PorcupineRegister {
    type State = Option<u8>;
    type Op = RegisterOp;
    type Metadata = ();

    fn init() -> Self::State {
        None
    }

    fn step(state: &Self::State, op: &Self::Op) -> (bool, Self::State) {
        match op {
            RegisterOp::Write(value) => (true, Some(*value)),
            RegisterOp::Read(seen) => (seen == state, *state),
        }
    }
}

/// One completed operation: (is a write, value written or read, call, return), with
/// `value` 0 meaning "read an empty register".
type Generated = (bool, u8, u64, u64);

fn operations() -> impl Strategy<Value = Vec<Generated>> {
    proptest::collection::vec(
        (any::<bool>(), 0u8..4, 0u64..30, 1u64..15)
            .prop_map(|(write, value, call, length)| (write, value, call, call + length)),
        1..9,
    )
}

/// Distinct timestamps (no ties for either checker to break): every call of operation `i` at
/// time `t` becomes `32 t + i`, every return `32 t + 16 + i`.
fn stamp(time: u64, i: usize, is_return: bool) -> u64 {
    time * 32 + if is_return { 16 } else { 0 } + i as u64
}

fn ours(history: &[Generated]) -> bool {
    let ops: Vec<Op<Option<String>, Option<String>>> = history
        .iter()
        .enumerate()
        .map(|(i, &(write, value, call, ret))| {
            let text = |v: u8| (v > 0).then(|| v.to_string());
            let (input, output) =
                if write { (Some(value.max(1).to_string()), None) } else { (None, Some(text(value))) };
            Op { input, output, call: stamp(call, i, false), ret: Some(stamp(ret, i, true)) }
        })
        .collect();
    match check(&Register, &ops) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable => false,
        Verdict::Unknown => panic!("a history of fewer than ten operations must be decided"),
    }
}

fn porcupine(history: &[Generated]) -> bool {
    let ops: Vec<Operation<PorcupineRegister>> = history
        .iter()
        .enumerate()
        .map(|(i, &(write, value, call, ret))| Operation {
            client_id: Some(i as u32),
            call_time: stamp(call, i, false) as i64,
            return_time: stamp(ret, i, true) as i64,
            op: if write {
                RegisterOp::Write(value.max(1))
            } else {
                RegisterOp::Read((value > 0).then_some(value))
            },
            metadata: None,
        })
        .collect();
    check_operations(&ops)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_agree_with_porcupine(history in operations()) {
        prop_assert_eq!(ours(&history), porcupine(&history), "history: {:?}", history);
    }
}

#[test]
fn both_reject_a_read_of_a_value_overwritten_before_it_began() {
    let history = [(true, 1, 0, 1), (true, 2, 2, 3), (false, 1, 4, 5)];
    assert!(!ours(&history));
    assert!(!porcupine(&history));
}
