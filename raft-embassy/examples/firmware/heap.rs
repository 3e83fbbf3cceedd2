//! The global allocator: embedded-alloc's linked-list heap over a static arena, wrapped to
//! record the peak number of bytes in use (the footprint the README reports).

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Heap arena size: three nodes with 64-entry log windows peak at about two thirds of it.
pub const SIZE: usize = 64 * 1024;

#[global_allocator]
static HEAP: PeakHeap =
    PeakHeap { heap: LlffHeap::empty(), used: AtomicUsize::new(0), peak: AtomicUsize::new(0) };

struct PeakHeap {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: forwards to the inner heap unchanged; only counts.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let block = unsafe { self.heap.alloc(layout) };
        if !block.is_null() {
            let used = self.used.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(used, Ordering::Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
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
    HEAP.peak.load(Ordering::Relaxed)
}
