//! Firmware for QEMU's `mps2-an386` (Cortex-M4F): three Raft nodes in one embassy executor
//! elect a leader, commit entries, survive the leader's isolation and converge again (see
//! `cluster.rs`). Prints progress and a summary line over semihosting, then exits QEMU with
//! status 0, or 1 on any failure, panic or fault.
//!
//! Build and run with `raft-embassy/run-qemu.sh` (see the README).
#![no_std]
#![no_main]

#[cfg(not(all(target_arch = "arm", target_os = "none")))]
compile_error!("the firmware example targets thumbv7em-none-eabihf: run raft-embassy/run-qemu.sh");

extern crate alloc;

mod cluster;
mod heap;
mod time_driver;

use alloc::boxed::Box;
use core::panic::PanicInfo;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use embassy_executor::{Executor, Spawner};

#[entry]
fn main() -> ! {
    heap::init();
    let Some(peripherals) = cortex_m::Peripherals::take() else { fail(format_args!("peripherals taken")) };
    time_driver::start(peripherals.SYST);
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run(|spawner| match demo(spawner) {
        Ok(token) => spawner.spawn(token),
        Err(error) => fail(format_args!("cannot start the demo: {error}")),
    })
}

#[embassy_executor::task]
async fn demo(spawner: Spawner) {
    hprintln!(
        "raft-embassy: 3 nodes, {}-entry log windows on {} KiB of RAM-backed flash each, heap arena {} KiB",
        cluster::LOG_WINDOW,
        cluster::FLASH_BYTES / 1024,
        heap::SIZE / 1024
    );
    match cluster::run(spawner, cluster::SNAPSHOT_CATCH_UP, |line| hprintln!("  {}", line)).await {
        Ok(report) => {
            hprintln!("raft-embassy firmware OK: {}; heap peak {} bytes", report, heap::peak());
            debug::exit(EXIT_SUCCESS);
        }
        Err(failure) => fail(format_args!("{failure}")),
    }
}

/// Reports a failure and exits QEMU with a non-zero status.
fn fail(why: core::fmt::Arguments<'_>) -> ! {
    hprintln!("raft-embassy firmware FAILED: {}", why);
    debug::exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", frame.pc()))
}
