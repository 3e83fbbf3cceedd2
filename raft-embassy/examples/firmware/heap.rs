//! The global allocator: embedded-alloc's linked-list heap over a static arena, wrapped to
//! record the peak number of bytes in use (the footprint the README reports). The counters sit
//! in a critical section rather than in atomics, so the firmware also builds for Cortex-M0+
//! (thumbv6m), which has no atomic read-modify-write.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use critical_section::Mutex;
use embedded_alloc::LlffHeap;

/// Heap arena size: the measured peak of the QEMU run (23 904 bytes for three nodes with
/// 64-entry windows, see the README's footprint table) plus 50 % for what the run does not
/// reach (longer partitions, larger snapshots in flight, allocator fragmentation), rounded up
/// to a KiB. `footprint.sh` reports the peak; raise this if it comes within 25 % of it.
pub const SIZE: usize = 36 * 1024;

#[global_allocator]
static HEAP: PeakHeap = PeakHeap { heap: LlffHeap::empty(), counts: Mutex::new(Cell::new((0, 0))) };

struct PeakHeap {
    heap: LlffHeap,
    /// Bytes in use, and the most ever in use.
    counts: Mutex<Cell<(usize, usize)>>,
}

// SAFETY: forwards to the inner heap unchanged; only counts.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let block = unsafe { self.heap.alloc(layout) };
        if !block.is_null() {
            critical_section::with(|cs| {
                let (used, peak) = self.counts.borrow(cs).get();
                let used = used + layout.size();
                self.counts.borrow(cs).set((used, peak.max(used)));
            });
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        critical_section::with(|cs| {
            let (used, peak) = self.counts.borrow(cs).get();
            self.counts.borrow(cs).set((used - layout.size(), peak));
        });
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract, which we pass on.
        unsafe { self.heap.dealloc(block, layout) }
    }
}

/// Hands the arena to the allocator. Call once, first thing in `main`.
pub fn init() {
    static mut ARENA: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
    // SAFETY: called once, before any allocation; nothing else touches ARENA.
    unsafe { HEAP.heap.init(addr_of_mut!(ARENA) as usize, SIZE) }
}

/// The most bytes ever allocated at once (allocator overhead excluded).
pub fn peak() -> usize {
    critical_section::with(|cs| HEAP.counts.borrow(cs).get().1)
}
