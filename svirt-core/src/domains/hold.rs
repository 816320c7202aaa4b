//! A hold that outlives its svirt. To scan the processes that may carry an identity while
//! none of them can fork away, an operation stops them all for a moment
//! ([`crate::manager::SecurityManager::hold_ids`]) and continues them after the scan. An svirt
//! killed in between would leave them stopped for good: a VM frozen by the tool that was
//! stopping a neighbour. So the hold is noted in the lock file first (the ids held, per
//! driver, and the scan before it), the note is cleared once the release went through, and
//! the next operation to take the lock finds a note left behind and continues what that hold
//! stopped, as its release would have: from the note alone, whatever pool that operation runs
//! under and whatever is left of the records.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Inner;
use crate::driver::ProcessInfo;
use crate::error::Result;
use crate::fsutil::LockGuard;
use crate::manager::HeldIds;

/// What a hold stopped processes for (told in logs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Held {
    /// The processes that may carry the drawn identities of the domain, for its stop's scan.
    Carriers { domain: String },
    /// The processes of every identity the scan before saw no process with, for a rebuild of
    /// the reservations.
    Unseen,
}

/// A hold under way, as the lock file keeps it: everything its release needs, whatever the
/// configuration or the records say by the time it is read.
#[derive(Debug, Serialize, Deserialize)]
struct HoldNote {
    /// The boot it was made in: no process outlives a reboot.
    boot: String,
    held: Held,
    /// The ids held, per driver.
    ids: Vec<HeldIds>,
    /// The real uid the hold's signals went out with: the hold stopped processes of it too
    /// (another svirt in the middle of its own hold).
    sender: u32,
    /// The processes as the scan before the hold found them (a process stopped then was
    /// stopped on purpose, and stays so).
    before: Vec<ProcessInfo>,
}

/// The notes a lock file holds: a hold's own, and those of earlier holds whose release failed
/// (kept until one goes through, never overwritten). `None` when it holds none; notes that
/// cannot be read, or that svirt cannot have written, are dropped (an empty list, so the
/// caller writes them away).
fn read_notes(lock: &LockGuard) -> Option<Vec<HoldNote>> {
    let bytes = lock.note()?;
    let notes: Vec<HoldNote> = match serde_json::from_slice(&bytes) {
        Ok(notes) => notes,
        Err(e) => {
            warn!(lock = %lock.path().display(), error = %e, "the lock file holds a note of a hold that cannot be read; dropped");
            return Some(Vec::new());
        }
    };
    // No hold takes root, or `(uid_t)-1` (root's "unchanged"): a note that names one was not
    // written by svirt, and would be refused at every operation.
    let (good, bad): (Vec<HoldNote>, Vec<HoldNote>) = notes.into_iter().partition(|n| {
        n.ids
            .iter()
            .flat_map(|h| &h.ids)
            .all(|&id| id != 0 && id != u32::MAX)
    });
    if !bad.is_empty() {
        warn!(lock = %lock.path().display(), count = bad.len(), "the lock file holds notes of holds of root or of uid -1, which no hold takes; dropped");
    }
    Some(good)
}

/// Write `notes` into the lock file (none: clear it).
fn write_notes(lock: &LockGuard, notes: &[HoldNote]) -> Result<()> {
    if notes.is_empty() {
        return lock.clear_note();
    }
    let bytes = serde_json::to_vec(notes).map_err(|e| crate::Error::StateCorrupt {
        path: lock.path().to_owned(),
        reason: format!("cannot encode the note of a hold: {e}"),
    })?;
    lock.set_note(&bytes)
}

impl Inner {
    /// Hold the processes of `ids` still, scan the processes, and let go, with the hold noted
    /// in the lock file from before it starts until the release went through. Returns the
    /// scan made while held. The release runs also when the hold failed part way; when the
    /// scan or the release fails, the note stays for the next holder of the lock. The note
    /// needs space on the state filesystem the first time (the lock file grows past its
    /// generation); without it, the hold goes on un-noted. Nothing is held, noted or scanned
    /// again for no ids.
    pub(super) fn noted_hold(
        &self,
        lock: &LockGuard,
        held: Held,
        ids: Vec<HeldIds>,
        before: &[ProcessInfo],
        kernel: &mut HashSet<u32>,
    ) -> Result<Option<Vec<ProcessInfo>>> {
        if ids.is_empty() {
            return Ok(None);
        }
        // Notes of earlier holds whose release failed stay with this one's.
        let mut notes = read_notes(lock).unwrap_or_default();
        notes.push(HoldNote {
            boot: self.boot_id()?,
            held,
            ids,
            sender: self.host.signal_sender(),
            before: before.to_vec(),
        });
        // A note that cannot be written (no space left for it on the state filesystem) does
        // not stop the operation: only an svirt killed in the hold needs it.
        let noted = match write_notes(lock, &notes) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %crate::display_chain(&e), "cannot note the hold in the lock file; should svirt be killed while it holds, what it stopped stays stopped");
                false
            }
        };
        let note = notes.pop().expect("this hold's note");
        let hold = self.manager.hold_ids(&note.ids);
        crate::failpoint::hit("hold.held");
        let procs = self.processes(kernel)?;
        let released = self
            .manager
            .release_ids(&note.ids, note.sender, before, &procs);
        if released.is_ok() && noted {
            if let Err(e) = write_notes(lock, &notes) {
                // The next operation continues what is stopped then: nothing this hold
                // stopped is, and a process stopped since on purpose is continued.
                warn!(error = %crate::display_chain(&e), "cannot clear the note of a hold that was let go");
            }
        }
        hold?;
        released?;
        Ok(Some(procs))
    }

    /// Continue what the holds noted in the lock file stopped, their svirt killed before it
    /// let go (see the module's doc), as their releases would have with a scan made now.
    /// Called with the lock just taken, before the operation's own checks. A note from another
    /// boot is dropped (nothing it stopped runs); a driver's part whose release fails is told
    /// and stays noted, alone, for the next operation, which tries again.
    pub(super) fn release_left_hold(&self, lock: &LockGuard) {
        let Some(notes) = read_notes(lock) else {
            return;
        };
        let kept = match self.release_notes(notes) {
            Ok(kept) => kept,
            Err((kept, e)) => {
                warn!(error = %crate::display_chain(&e), "cannot continue the processes that the hold of a killed svirt left stopped; the next operation tries again");
                kept
            }
        };
        if let Err(e) = write_notes(lock, &kept) {
            warn!(error = %crate::display_chain(&e), "cannot clear the note of a hold that was let go");
        }
    }

    /// Release `notes`; the parts left to release (or all of them, with the error, when the
    /// processes cannot be read).
    fn release_notes(
        &self,
        notes: Vec<HoldNote>,
    ) -> std::result::Result<Vec<HoldNote>, (Vec<HoldNote>, crate::Error)> {
        let boot = match self.boot_id() {
            Ok(b) => b,
            Err(e) => return Err((notes, e)),
        };
        let notes: Vec<HoldNote> = notes.into_iter().filter(|n| n.boot == boot).collect();
        if notes.is_empty() {
            return Ok(notes);
        }
        let now = match self.processes(&mut HashSet::new()) {
            Ok(p) => p,
            Err(e) => return Err((notes, e)),
        };
        let mut kept = Vec::new();
        for note in notes {
            let mut failed = Vec::new();
            for h in &note.ids {
                match self.manager.release_ids(
                    std::slice::from_ref(h),
                    note.sender,
                    &note.before,
                    &now,
                ) {
                    Ok(()) => {
                        info!(held = ?note.held, model = %h.model, "continued the processes that the hold of a killed svirt left stopped");
                    }
                    Err(e) => {
                        warn!(held = ?note.held, model = %h.model, error = %crate::display_chain(&e), "cannot continue the processes that the hold of a killed svirt left stopped; the next operation tries again");
                        failed.push(h.clone());
                    }
                }
            }
            if !failed.is_empty() {
                kept.push(HoldNote {
                    ids: failed,
                    ..note
                });
            }
        }
        Ok(kept)
    }
}
