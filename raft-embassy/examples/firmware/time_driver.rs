//! An embassy-time driver on the Cortex-M SysTick: a 1 kHz interrupt counts milliseconds and
//! wakes the timers that are due (embassy-time is built with `tick-hz-1_000`).
//!
//! Its timer queue is embassy-time-queue-utils' generic one, the simplest for a hand-written
//! driver. The executor-integrated queue would work as well: raft-core's driver polls the
//! input stream, and so the tick timer, with the node task's own waker (see `ticks.rs`).

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::queue_generic::ConstGenericQueue;

/// The mps2-an386 core clock (QEMU models the board's 25 MHz SYSCLK).
const CORE_HZ: u32 = 25_000_000;

/// Timers pending at once: at most one per task (wakers are deduplicated), with room to spare.
type Queue = ConstGenericQueue<16>;

struct SysTickDriver {
    state: Mutex<RefCell<State>>,
}

struct State {
    /// Milliseconds since [`start`].
    now: u64,
    /// The earliest deadline in `queue`.
    next: u64,
    queue: Queue,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    state: Mutex::new(RefCell::new(State { now: 0, next: u64::MAX, queue: Queue::new() })),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.state.borrow_ref(cs).now)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let state = &mut *self.state.borrow_ref_mut(cs);
            if state.queue.schedule_wake(at, waker) {
                state.next = state.queue.next_expiration(state.now);
            }
        });
    }
}

/// Starts the millisecond interrupt.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let state = &mut *DRIVER.state.borrow_ref_mut(cs);
        state.now += 1;
        if state.now >= state.next {
            state.next = state.queue.next_expiration(state.now);
        }
    });
}
