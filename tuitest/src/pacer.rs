//! [`Pacer`]: wall-clock time turned into virtual milliseconds, for `auto on`.

use std::time::{Duration, Instant};

/// Counts the whole milliseconds of wall-clock time between calls, carrying the fractions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacer {
    /// When it last counted; `None` before the first call.
    last: Option<Instant>,
    /// Time counted but not yet a whole millisecond.
    carry: Duration,
}

impl Pacer {
    /// The whole milliseconds since the previous call (none on the first call).
    pub fn elapsed(&mut self, now: Instant) -> u64 {
        let since = self.last.map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last = Some(now);
        let total = self.carry + since;
        let ms = total.as_millis() as u64;
        self.carry = total - Duration::from_millis(ms);
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_a_millisecond_add_up() {
        let start = Instant::now();
        let at = |micros| start + Duration::from_micros(micros);
        let mut pacer = Pacer::default();
        assert_eq!(pacer.elapsed(at(0)), 0);
        assert_eq!(pacer.elapsed(at(600)), 0);
        assert_eq!(pacer.elapsed(at(1_200)), 1);
        assert_eq!(pacer.elapsed(at(101_200)), 100);
        assert_eq!(pacer.elapsed(at(101_900)), 0);
        assert_eq!(pacer.elapsed(at(102_000)), 1, "the carried 0.9 ms and 0.1 ms make one");
        assert_eq!(pacer.elapsed(at(50)), 0, "a clock that steps back counts nothing");
    }
}
