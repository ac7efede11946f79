//! Fault injection for crash tests: a countdown over the store's named file operations (writing an
//! SST, writing, renaming and installing the manifest, deleting a compaction's inputs) that makes the
//! Nth one fail as if the process had died there. Outside tests nothing sets it and every check passes.

use std::cell::Cell;
use std::path::Path;

use super::super::error::{LsmError, Result};

/// The countdown. Only the store's own task touches it (single-threaded).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Points still to pass before one fails; `None`: never fail.
    points_until_failure: Cell<Option<u64>>,
    /// Points passed since the store opened (tests use it to learn how many there are).
    points_passed: Cell<u64>,
}

impl Faults {
    /// Makes the point after the next `n_points` fail (`0`: the very next one).
    #[cfg(test)]
    pub(crate) fn fail_after(&self, n_points: u64) {
        self.points_until_failure.set(Some(n_points));
    }

    /// Points passed so far.
    #[cfg(test)]
    pub(crate) fn points_passed(&self) -> u64 {
        self.points_passed.get()
    }

    /// Passes the point `operation` on `file`, or fails there with an injected I/O error.
    pub(crate) fn check(&self, file: &Path, operation: &'static str) -> Result<()> {
        self.points_passed.set(self.points_passed.get() + 1);
        match self.points_until_failure.get() {
            Some(0) => {
                self.points_until_failure.set(None);
                Err(LsmError::io(file, operation, std::io::Error::other("injected fault")))
            }
            Some(n_points) => {
                self.points_until_failure.set(Some(n_points - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}
