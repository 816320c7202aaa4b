//! Where MCS and uid reservations live. [`LabelStore`] is a trait so a cluster-wide store can plug
//! in; the state database ([`crate::db::Db`]) is the embedded one, so separate `svirt` processes
//! never hand out one pair, and [`MemoryStore`] serves embedders that persist on their own.

use std::fmt::Debug;
use std::sync::Mutex;

use crate::context::{Level, MlsRange};
use crate::error::{Error, Result};
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

    /// [`IdPool::allocate`] in `pool`: `holder`'s id again if it holds one, else the lowest free
    /// id that `skip` does not refuse. A store may do it without reading the whole pool.
    fn allocate_id(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        holder: &str,
        skip: &dyn Fn(u32) -> bool,
    ) -> Result<u32> {
        let mut out = None;
        self.update_ids(pool, lo, hi, &mut |p| {
            out = Some(p.allocate(holder, skip)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::StateCorrupt {
            path: "label store".into(),
            reason: "an update succeeded without drawing an id".into(),
        })
    }

    /// [`IdPool::release`] in `pool`: true if `holder` held `id`.
    fn release_id(&self, pool: &str, lo: u32, hi: u32, id: u32, holder: &str) -> Result<bool> {
        let mut released = false;
        self.update_ids(pool, lo, hi, &mut |p| {
            released = p.release(id, holder);
            Ok(())
        })?;
        Ok(released)
    }
}

impl dyn LabelStore {
    /// Draw a fresh pair, with the kernel's random numbers (`getrandom`). Not `rand::rng()`: a
    /// CLI call draws one pair, and seeding that generator probes the CPU's features first
    /// (a `cpuid` per feature leaf, each a trap to the hypervisor in a VM: 0.6% of a
    /// start+stop here).
    pub fn allocate(&self, range: McsRange) -> Result<Level> {
        use rand::TryRngCore;
        let mut out = None;
        self.update(range, &mut |s| {
            out = Some(s.allocate(&mut rand::rngs::OsRng.unwrap_err())?);
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
