//! [`SimRng`]: the simulator's only source of randomness.
//!
//! Every random choice (message delays, drops, crashes, client operations) is drawn from a
//! seeded [`SplitMix64`] (raft-core's, the one nodes draw their jitter from), so a seed replays
//! the same run on every machine.

use raft_core::SplitMix64;

/// The simulator's draws — below, between, chance, pick — from a seeded [`SplitMix64`].
///
/// ```
/// use testkit::SimRng;
/// let (mut a, mut b) = (SimRng::new(42), SimRng::new(42));
/// assert_eq!(a.below(1000), b.below(1000));
/// assert!((5..=9).contains(&a.between(5, 9)));
/// ```
#[derive(Clone, Debug)]
pub struct SimRng(SplitMix64);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A value in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A value in `low..=high`; `low` when the range is empty.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            low
        } else {
            low + self.below(high - low + 1)
        }
    }

    /// `true` with probability `p` (clamped to `0.0..=1.0`).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits make a uniformly spaced float in [0, 1), identical on every platform.
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let index = self.below(items.len() as u64) as usize;
        items.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_replay() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        for _ in 0..1000 {
            let x = a.between(3, 5);
            assert_eq!(x, b.between(3, 5));
            assert!((3..=5).contains(&x));
        }
        assert_eq!(a.below(0), 0);
        assert_eq!(a.between(9, 9), 9);
        assert!(a.pick::<u8>(&[]).is_none());
        assert!(!a.chance(0.0) && a.chance(1.0));
    }
}
