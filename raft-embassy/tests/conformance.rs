//! The flash store (on a simulated NOR flash) and the in-RAM window pass testkit's log-store
//! conformance suite.

#[path = "../src/sim_flash.rs"]
mod sim_flash;

use raft_core::Membership;
use raft_embassy::{FlashLog, FlashLogConfig, RamState};
use sim_flash::SimFlash;
use testkit::conformance::{check_log_store, StoreFactory};

const PAGES: usize = 16;

fn config() -> FlashLogConfig {
    FlashLogConfig {
        range: 0..(PAGES * SimFlash::PAGE) as u32,
        log_capacity: 16,
        max_item_bytes: 96,
        max_snapshot_bytes: 1024,
    }
}

/// Each store on a new erased flash; a restart is a new `FlashLog` over the same flash.
struct OnFlash;

impl StoreFactory for OnFlash {
    type Store = FlashLog<SimFlash>;

    async fn fresh(&mut self, bootstrap: Membership) -> Self::Store {
        FlashLog::new(SimFlash::new(PAGES), config(), bootstrap).expect("a usable configuration")
    }

    async fn restart(&mut self, store: Self::Store) -> Self::Store {
        // The bootstrap configuration comes from the flash now; this one must not be used.
        FlashLog::new(store.into_flash(), config(), Membership::new([9])).expect("a usable configuration")
    }
}

#[test]
fn the_flash_store_conforms() {
    futures::executor::block_on(check_log_store(OnFlash));
}

/// raft-core's in-memory log store over a fixed window: a restart keeps the value.
struct InRam;

impl StoreFactory for InRam {
    type Store = RamState<16>;

    async fn fresh(&mut self, bootstrap: Membership) -> Self::Store {
        RamState::<16>::with_buffer(bootstrap)
    }

    async fn restart(&mut self, store: Self::Store) -> Self::Store {
        store
    }
}

#[test]
fn the_ram_store_conforms() {
    futures::executor::block_on(check_log_store(InRam));
}
