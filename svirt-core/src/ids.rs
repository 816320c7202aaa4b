//! A pool of numeric ids (uids per VM) with named holders; kept in the [`crate::store::LabelStore`]
//! beside the MCS state, so separate processes never hand out one uid twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Ids `lo..=hi` and who holds which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdPool {
    pub lo: u32,
    pub hi: u32,
    /// id → holders (more than one only for ids reserved as shared).
    pub held: BTreeMap<u32, Vec<String>>,
    /// The held ids every holder reserved as shared: only these may take another holder.
    #[serde(default)]
    pub shared: BTreeSet<u32>,
}

impl IdPool {
    /// An empty pool.
    pub fn new(lo: u32, hi: u32) -> Self {
        IdPool {
            lo,
            hi,
            held: BTreeMap::new(),
            shared: BTreeSet::new(),
        }
    }

    /// Hand out the lowest free id to `holder` (the same id again if it already holds one).
    /// Exhaustion is an immediate error.
    pub fn allocate(&mut self, holder: &str, skip: &dyn Fn(u32) -> bool) -> Result<u32> {
        if let Some((&id, _)) = self
            .held
            .iter()
            .find(|(_, h)| h.iter().any(|x| x == holder))
        {
            return Ok(id);
        }
        let mut id = self.lo;
        for (&used, _) in self.held.range(self.lo..=self.hi) {
            while id < used {
                if !skip(id) {
                    break;
                }
                id += 1;
            }
            if id < used {
                break;
            }
            id = used + 1;
        }
        while id <= self.hi && skip(id) {
            id += 1;
        }
        if id > self.hi || self.held.contains_key(&id) {
            return Err(Error::IdsExhausted {
                range: format!("uids {}-{}", self.lo, self.hi),
            });
        }
        self.held.insert(id, vec![holder.to_owned()]);
        Ok(id)
    }

    /// Reserve a given id for `holder`; held by another, it is refused unless this reservation
    /// and every earlier one declared it shared.
    pub fn reserve(&mut self, id: u32, holder: &str, shared: bool) -> Result<()> {
        let holders = self.held.entry(id).or_default();
        if holders.iter().any(|h| h == holder) {
            return Ok(());
        }
        if holders.is_empty() {
            holders.push(holder.to_owned());
            if shared {
                self.shared.insert(id);
            }
            return Ok(());
        }
        // Like a static MCS label: joined only when the newcomer and every holder declared it
        // shared (a drawn id never is).
        if !(shared && self.shared.contains(&id)) {
            return Err(Error::LabelInUse {
                label: format!("uid {id}"),
                holders: format!("domain {}", holders.join(", ")),
            });
        }
        holders.push(holder.to_owned());
        Ok(())
    }

    pub fn release(&mut self, id: u32, holder: &str) -> bool {
        let Some(h) = self.held.get_mut(&id) else {
            return false;
        };
        let before = h.len();
        h.retain(|x| x != holder);
        let released = h.len() != before;
        if h.is_empty() {
            self.held.remove(&id);
            self.shared.remove(&id);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_first_skipping_taken_ids_then_exhaustion() {
        let mut p = IdPool::new(100, 104);
        let skip = |id: u32| id == 101;
        assert_eq!(p.allocate("a", &skip).unwrap(), 100);
        assert_eq!(p.allocate("b", &skip).unwrap(), 102);
        assert_eq!(p.allocate("a", &skip).unwrap(), 100, "same holder, same id");
        assert_eq!(p.allocate("c", &skip).unwrap(), 103);
        assert_eq!(p.allocate("d", &skip).unwrap(), 104);
        assert!(matches!(
            p.allocate("e", &skip),
            Err(Error::IdsExhausted { .. })
        ));
        assert!(p.release(102, "b"));
        assert_eq!(p.allocate("e", &skip).unwrap(), 102);
    }

    #[test]
    fn reserve_refuses_a_taken_id_unless_shared() {
        let mut p = IdPool::new(1, 10);
        p.reserve(5, "a", true).unwrap();
        assert!(p.reserve(5, "b", false).is_err());
        p.reserve(5, "b", true).unwrap();
        assert!(p.release(5, "a"));
        assert!(p.held.contains_key(&5));
        // A holder that did not declare it shared, or a drawn id, is never joined.
        p.reserve(6, "c", false).unwrap();
        assert!(p.reserve(6, "d", true).is_err());
        let drawn = p.allocate("e", &|_| false).unwrap();
        assert!(p.reserve(drawn, "f", true).is_err());
    }
}
