//! A hold that outlives its svirt. To scan the processes that may carry an identity while
//! none of them can fork away, an operation stops them all for a moment
//! ([`crate::manager::SecurityManager::hold_carriers`], `hold_unseen`) and continues them after
//! the scan. An svirt killed in between would leave them stopped for good: a VM frozen by the
//! tool that was stopping a neighbour. So the hold is noted in the lock file first (what was
//! held and the scan before it), the note is cleared once the release went through, and the
//! next operation to take the lock finds a note left behind and continues what that hold
//! stopped, as its release would have.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Inner, Record};
use crate::driver::ProcessInfo;
use crate::error::Result;
use crate::fsutil::LockGuard;

/// What a hold stopped processes for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Held {
    /// The processes that may carry the drawn identities of the domain, for its stop's scan.
    Carriers { domain: String },
    /// The processes of every identity the scan before saw no process with, for a rebuild of
    /// the reservations.
    Unseen,
}

/// A hold under way, as the lock file keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct HoldNote {
    /// The boot it was made in: no process outlives a reboot.
    boot: String,
    held: Held,
    /// The processes as the scan before the hold found them (a process stopped then was
    /// stopped on purpose, and stays so).
    before: Vec<ProcessInfo>,
}

impl Inner {
    /// Hold (`hold`), scan the processes, and let go (`release`, given the scan), with the
    /// hold noted in the lock file from before it starts until the release went through.
    /// Returns the scan made while held. The release runs also when the hold failed part way;
    /// when the scan or the release fails, the note stays for the next holder of the lock.
    /// The note needs space on the state filesystem the first time (the lock file grows past
    /// its generation); without it, the hold goes on un-noted.
    pub(super) fn noted_hold(
        &self,
        lock: &LockGuard,
        held: Held,
        before: &[ProcessInfo],
        kernel: &mut HashSet<u32>,
        hold: impl FnOnce() -> Result<()>,
        release: impl FnOnce(&[ProcessInfo]) -> Result<()>,
    ) -> Result<Vec<ProcessInfo>> {
        let note = HoldNote {
            boot: self.boot_id()?,
            held,
            before: before.to_vec(),
        };
        let bytes = serde_json::to_vec(&note).map_err(|e| crate::Error::StateCorrupt {
            path: lock.path().to_owned(),
            reason: format!("cannot encode the note of a hold: {e}"),
        })?;
        // A note that cannot be written (no space left for it on the state filesystem) does
        // not stop the operation: only an svirt killed in the hold needs it.
        let noted = match lock.set_note(&bytes) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %crate::display_chain(&e), "cannot note the hold in the lock file; should svirt be killed while it holds, what it stopped stays stopped");
                false
            }
        };
        let held = hold();
        crate::failpoint::hit("hold.held");
        let procs = self.processes(kernel)?;
        let released = release(&procs);
        if released.is_ok() && noted {
            if let Err(e) = lock.clear_note() {
                // The next operation continues what is stopped then: nothing this hold
                // stopped is, and a process stopped since on purpose is continued.
                warn!(error = %crate::display_chain(&e), "cannot clear the note of a hold that was let go");
            }
        }
        held?;
        released?;
        Ok(procs)
    }

    /// Continue what a hold noted in the lock file stopped, its svirt killed before it let go
    /// (see the module's doc). Called with the lock just taken; a failure is told and leaves
    /// the note for the next operation, which tries again.
    pub(super) fn release_left_hold(&self, lock: &LockGuard) {
        let Some(bytes) = lock.note() else {
            return;
        };
        let note: HoldNote = match serde_json::from_slice(&bytes) {
            Ok(n) => n,
            Err(e) => {
                warn!(lock = %lock.path().display(), error = %e, "the lock file holds a note of a hold that cannot be read; dropped");
                let _ = lock.clear_note();
                return;
            }
        };
        match self.release_noted(&note) {
            Ok(done) => {
                if done {
                    info!(held = ?note.held, "continued the processes that the hold of a killed svirt left stopped");
                }
                if let Err(e) = lock.clear_note() {
                    warn!(error = %crate::display_chain(&e), "cannot clear the note of a hold that was let go");
                }
            }
            Err(e) => {
                warn!(held = ?note.held, error = %crate::display_chain(&e), "cannot continue the processes that the hold of a killed svirt left stopped; the next operation tries again");
            }
        }
    }

    /// Let go what `note` held, as its release would have with a scan made now. False when
    /// there was nothing to do (another boot, the domain's record gone).
    fn release_noted(&self, note: &HoldNote) -> Result<bool> {
        if note.boot != self.boot_id()? {
            return Ok(false);
        }
        let now = self.processes(&mut HashSet::new())?;
        match &note.held {
            Held::Carriers { domain } => {
                let Some(row) = self.db.read(|tx| tx.domain(domain))? else {
                    warn!(vm = %domain, "a hold left by a killed svirt names a domain no longer recorded; what it stopped cannot be told apart");
                    return Ok(false);
                };
                let rec = Record::decode(&row, self.db.path())?;
                self.manager
                    .release_carriers(&rec.domain, &rec.labels, &note.before, &now)?;
            }
            Held::Unseen => self.manager.release_unseen(&note.before, &now)?,
        }
        Ok(true)
    }
}
