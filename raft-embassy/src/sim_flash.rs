//! A simulated NOR flash for tests: program bits 1 → 0, erase pages to `0xff`, and a power
//! cut after any number of programmed or erased bytes. Shared by the unit tests and the
//! power-cut tests (`tests/power_cut.rs`, which include this file).

#![allow(dead_code)] // each includer uses a part

use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// The simulated chip, shared by the clones of a [`SimFlash`] (one clone per "boot").
#[derive(Debug)]
pub struct Chip {
    /// The flash contents.
    pub bytes: Vec<u8>,
    /// Bytes that may still be programmed or erased before the power cut; `None`: no cut.
    pub budget: Option<u64>,
    /// Bytes programmed or erased so far.
    pub spent: u64,
    /// The power is off: every operation fails until [`SimFlash::power_on`].
    pub dead: bool,
    /// On a cut, the byte being programmed or erased is left half done (some bits only).
    pub torn: bool,
    /// Words programmed that were not erased first (sequential-storage never should).
    pub rewrites: u64,
    /// The last program or erase: (erase?, start, length).
    pub last_op: (bool, usize, usize),
    /// Every program and erase, in order, when recording.
    pub recording: Option<Vec<Op>>,
}

/// A program or erase operation, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Bytes programmed from an address.
    Write(usize, Vec<u8>),
    /// Bytes erased from an address.
    Erase(usize, usize),
}

impl Op {
    /// Bytes of work.
    pub fn len(&self) -> usize {
        match self {
            Op::Write(_, data) => data.len(),
            Op::Erase(_, len) => *len,
        }
    }

    /// Does the `i`th byte of the operation to `bytes`; `torn`: only half of it.
    pub fn apply_byte(&self, bytes: &mut [u8], i: usize, torn: bool) {
        match self {
            Op::Write(at, data) => bytes[at + i] &= if torn { data[i] | 0xf0 } else { data[i] },
            Op::Erase(at, _) => bytes[at + i] |= if torn { 0x0f } else { 0xff },
        }
    }
}

/// A NOR flash of `bytes.len()` bytes in 256-byte erase pages and 4-byte words.
#[derive(Clone, Debug)]
pub struct SimFlash(Arc<Mutex<Chip>>);

/// The simulated flash's errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// The power was cut.
    PowerCut,
    /// An address outside the chip.
    OutOfBounds,
    /// A write or erase not aligned to the word or page.
    NotAligned,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::PowerCut => NorFlashErrorKind::Other,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
        }
    }
}

impl SimFlash {
    /// Erase page size.
    pub const PAGE: usize = 256;

    /// The chip, to inspect or change.
    pub fn chip(&self) -> MutexGuard<'_, Chip> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An erased chip of `pages` pages.
    pub fn new(pages: usize) -> Self {
        SimFlash(Arc::new(Mutex::new(Chip {
            bytes: vec![0xff; pages * Self::PAGE],
            budget: None,
            spent: 0,
            dead: false,
            torn: false,
            rewrites: 0,
            last_op: (false, 0, 0),
            recording: None,
        })))
    }

    /// A chip holding `bytes`.
    pub fn with_bytes(bytes: Vec<u8>) -> Self {
        let flash = SimFlash::new(0);
        flash.chip().bytes = bytes;
        flash
    }

    /// Cuts the power once `bytes` more bytes have been programmed or erased.
    pub fn cut_after(&self, bytes: u64, torn: bool) {
        let mut chip = self.chip();
        chip.budget = Some(bytes);
        chip.torn = torn;
    }

    /// Restores power (and removes any pending cut).
    pub fn power_on(&self) {
        let mut chip = self.chip();
        chip.dead = false;
        chip.budget = None;
    }

    /// Bytes programmed or erased so far.
    pub fn spent(&self) -> u64 {
        self.chip().spent
    }

    /// Whether the power was cut.
    pub fn is_dead(&self) -> bool {
        self.chip().dead
    }

    /// One byte of work; false (and the power goes off) when the budget is exhausted.
    fn spend(chip: &mut Chip) -> bool {
        if let Some(budget) = chip.budget.as_mut() {
            if *budget == 0 {
                chip.dead = true;
                return false;
            }
            *budget -= 1;
        }
        chip.spent += 1;
        true
    }

    fn check(chip: &Chip, offset: u32, len: usize, align: usize) -> Result<usize, SimError> {
        if chip.dead {
            return Err(SimError::PowerCut);
        }
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(SimError::NotAligned);
        }
        if start + len > chip.bytes.len() {
            return Err(SimError::OutOfBounds);
        }
        Ok(start)
    }
}

impl ErrorType for SimFlash {
    type Error = SimError;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        let chip = self.chip();
        let start = Self::check(&chip, offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&chip.bytes[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.chip().bytes.len()
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = Self::PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let chip = &mut *self.chip();
        let start = Self::check(chip, from, to.saturating_sub(from) as usize, Self::PAGE)?;
        chip.last_op = (true, start, (to - from) as usize);
        if let Some(ops) = chip.recording.as_mut() {
            ops.push(Op::Erase(start, (to - from) as usize));
        }
        for at in start..to as usize {
            if !Self::spend(chip) {
                if chip.torn {
                    chip.bytes[at] |= 0x0f;
                }
                return Err(SimError::PowerCut);
            }
            chip.bytes[at] = 0xff;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SimError> {
        let chip = &mut *self.chip();
        let start = Self::check(chip, offset, data.len(), Self::WRITE_SIZE)?;
        chip.last_op = (false, start, data.len());
        if let Some(ops) = chip.recording.as_mut() {
            ops.push(Op::Write(start, data.to_vec()));
        }
        for word in chip.bytes[start..start + data.len()].chunks(Self::WRITE_SIZE) {
            if word.iter().any(|&b| b != 0xff) {
                chip.rewrites += 1;
            }
        }
        for (at, &byte) in (start..).zip(data) {
            if !Self::spend(chip) {
                if chip.torn {
                    chip.bytes[at] &= byte | 0xf0;
                }
                return Err(SimError::PowerCut);
            }
            chip.bytes[at] &= byte;
        }
        Ok(())
    }
}
