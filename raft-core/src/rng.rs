//! [`SplitMix64`]: a tiny deterministic PRNG, the node's source of election jitter.

/// A small seedable pseudo-random generator (SplitMix64, Steele, Lea and Flood 2014).
///
/// The protocol must replay byte for byte from a seed, so it never asks the platform for
/// entropy; a node draws its election jitter from one of these, seeded from
/// [`Config::seed`](crate::Config::seed). Statistical quality needs are modest. The testkit
/// simulator draws every random choice from one too.
///
/// ```
/// use raft_core::SplitMix64;
/// let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((150..300).contains(&a.in_range(150, 300)));
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; `low` when the range is empty.
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            low
        } else {
            low + self.next_u64() % (high - low)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_stay_in_range() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        for _ in 0..1000 {
            let x = a.in_range(150, 300);
            assert_eq!(x, b.in_range(150, 300));
            assert!((150..300).contains(&x));
        }
        assert_eq!(a.in_range(5, 5), 5);
    }
}
