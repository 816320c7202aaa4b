//! Where MCS reservations live. [`LabelStore`] is a trait so a cluster-wide store can plug in; the
//! embedded [`FileStore`] keeps the state in one file under the state directory, changed under an
//! exclusive lock and replaced atomically, so separate `svirt` processes never hand out one pair.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::context::{Level, MlsRange};
use crate::error::{Error, Result};
use crate::fsutil::{atomic_write, read_optional, LockGuard};
use crate::ids::IdPool;
use crate::mcs::{McsRange, McsState};

/// A place that holds the [`McsState`] of a label space and lets one caller change it at a time.
pub trait LabelStore: Send + Sync + Debug {
    /// Run `f` on the state of `range` with exclusive access; its changes are kept if it returns
    /// Ok and discarded if it fails.
    fn update(&self, range: McsRange, f: &mut dyn FnMut(&mut McsState) -> Result<()>)
        -> Result<()>;

    /// Run `f` on the id pool `pool` (e.g. VM uids) under the same exclusive access.
    fn update_ids(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        f: &mut dyn FnMut(&mut IdPool) -> Result<()>,
    ) -> Result<()>;
}

impl dyn LabelStore {
    /// Draw a fresh pair.
    pub fn allocate(&self, range: McsRange) -> Result<Level> {
        let mut out = None;
        self.update(range, &mut |s| {
            out = Some(s.allocate(&mut rand::rng())?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::StateCorrupt {
            path: "label store".into(),
            reason: "an update succeeded without drawing a label".into(),
        })
    }

    /// See [`McsState::reserve_dynamic`].
    pub fn reserve_dynamic(&self, range: McsRange, level: &Level) -> Result<bool> {
        let mut fresh = false;
        self.update(range, &mut |s| {
            fresh = s.reserve_dynamic(level)?;
            Ok(())
        })?;
        Ok(fresh)
    }

    /// See [`McsState::reserve_fixed`].
    pub fn reserve_fixed(
        &self,
        range: McsRange,
        label: &MlsRange,
        holder: &str,
        shared: bool,
    ) -> Result<()> {
        self.update(range, &mut |s| s.reserve_fixed(label, holder, shared))
    }

    /// See [`McsState::release`].
    pub fn release(&self, range: McsRange, label: &MlsRange, holder: &str) -> Result<bool> {
        let mut released = false;
        self.update(range, &mut |s| {
            released = s.release(label, holder);
            Ok(())
        })?;
        Ok(released)
    }
}

/// The embedded store: `<state_dir>/mcs.state`, locked through `<state_dir>/mcs.lock`.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    lock: PathBuf,
}

impl FileStore {
    /// A store in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        FileStore {
            path: state_dir.join("mcs.state"),
            lock: state_dir.join("mcs.lock"),
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LabelStore for FileStore {
    fn update(
        &self,
        range: McsRange,
        f: &mut dyn FnMut(&mut McsState) -> Result<()>,
    ) -> Result<()> {
        let _lock = LockGuard::exclusive(&self.lock)?;
        let mut state = match read_optional(&self.path)? {
            None => McsState::new(range),
            Some(bytes) => {
                let s = McsState::from_bytes(&bytes).map_err(|reason| Error::StateCorrupt {
                    path: self.path.clone(),
                    reason,
                })?;
                if s.range() == range {
                    s
                } else if s.allocated() == 0 && s.fixed().is_empty() {
                    McsState::new(range)
                } else {
                    return Err(Error::StoreRangeMismatch {
                        path: self.path.clone(),
                        stored: s.range().to_string(),
                        wanted: range.to_string(),
                    });
                }
            }
        };
        f(&mut state)?;
        atomic_write(&self.path, &state.to_bytes())
    }

    fn update_ids(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        f: &mut dyn FnMut(&mut IdPool) -> Result<()>,
    ) -> Result<()> {
        let _lock = LockGuard::exclusive(&self.lock)?;
        let path = self.path.with_file_name(format!("ids-{pool}.json"));
        let mut ids = match read_optional(&path)? {
            None => IdPool::new(lo, hi),
            Some(b) => {
                let mut p: IdPool =
                    serde_json::from_slice(&b).map_err(|e| Error::StateCorrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if p.held.is_empty() {
                    p = IdPool::new(lo, hi);
                } else if (p.lo, p.hi) != (lo, hi) {
                    return Err(Error::StoreRangeMismatch {
                        path,
                        stored: format!("{}-{}", p.lo, p.hi),
                        wanted: format!("{lo}-{hi}"),
                    });
                }
                p
            }
        };
        f(&mut ids)?;
        let bytes = serde_json::to_vec(&ids).map_err(|e| Error::StateCorrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        atomic_write(&path, &bytes)
    }
}

/// An in-process store, for embedding managers that keep their own persistence, and for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Option<McsState>>,
    ids: Mutex<std::collections::BTreeMap<String, IdPool>>,
}

impl LabelStore for MemoryStore {
    fn update(
        &self,
        range: McsRange,
        f: &mut dyn FnMut(&mut McsState) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = match guard.take() {
            Some(s) if s.range() == range => s,
            _ => McsState::new(range),
        };
        let backup = state.clone();
        let result = f(&mut state);
        *guard = Some(if result.is_ok() { state } else { backup });
        result
    }

    fn update_ids(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        f: &mut dyn FnMut(&mut IdPool) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let entry = guard
            .entry(pool.to_owned())
            .or_insert_with(|| IdPool::new(lo, hi));
        let mut copy = entry.clone();
        f(&mut copy)?;
        *entry = copy;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_persists_between_instances_and_refuses_a_changed_range() {
        let dir = tempfile::tempdir().unwrap();
        let r = McsRange {
            sensitivity: 0,
            cat_min: 0,
            cat_max: 7,
        };
        let store: Box<dyn LabelStore> = Box::new(FileStore::new(dir.path()));
        let a = store.allocate(r).unwrap();
        let again: Box<dyn LabelStore> = Box::new(FileStore::new(dir.path()));
        for _ in 0..27 {
            assert_ne!(again.allocate(r).unwrap(), a);
        }
        assert!(matches!(
            again.allocate(r),
            Err(Error::LabelsExhausted { .. })
        ));
        let wider = McsRange { cat_max: 9, ..r };
        assert!(matches!(
            again.allocate(wider),
            Err(Error::StoreRangeMismatch { .. })
        ));
    }

    #[test]
    fn failed_update_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn LabelStore> = Box::new(FileStore::new(dir.path()));
        let r = McsRange::DEFAULT;
        let res = store.update(r, &mut |s| {
            s.allocate(&mut rand::rng())?;
            Err(Error::Config {
                reason: "injected".into(),
            })
        });
        assert!(res.is_err());
        assert!(!dir.path().join("mcs.state").exists());
    }

    #[test]
    fn corrupt_state_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mcs.state"), b"SVIRT-MCS\n{not json\n").unwrap();
        let store: Box<dyn LabelStore> = Box::new(FileStore::new(dir.path()));
        assert!(matches!(
            store.allocate(McsRange::DEFAULT),
            Err(Error::StateCorrupt { .. })
        ));
    }
}
