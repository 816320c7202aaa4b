//! The database as a [`LabelStore`]: MCS label spaces as blobs, id pools as rows. Both join a
//! write transaction open on the same [`Db`], so labels drawn while an intent is recorded commit
//! (or roll back) with it.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};

use super::Db;
use crate::error::{Error, Result};
use crate::ids::IdPool;
use crate::mcs::{McsRange, McsState};
use crate::store::LabelStore;

impl Db {
    fn load_space(&self, c: &Connection, range: McsRange) -> Result<(McsState, Vec<String>)> {
        let rows = c
            .prepare_cached("SELECT range, state FROM label_spaces")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err("read the label space from"))?;
        let mut state = None;
        let mut stale = Vec::new();
        for (key, bytes) in rows {
            let s = McsState::from_bytes(&bytes)
                .map_err(|reason| self.corrupt(format!("label space {key}: {reason}")))?;
            if s.range() == range {
                state = Some(s);
            } else if s.allocated() == 0 && s.fixed().is_empty() {
                stale.push(key);
            } else {
                return Err(Error::StoreRangeMismatch {
                    path: self.path.clone(),
                    stored: s.range().to_string(),
                    wanted: range.to_string(),
                });
            }
        }
        Ok((state.unwrap_or_else(|| McsState::new(range)), stale))
    }

    fn load_pool(&self, c: &Connection, pool: &str, lo: u32, hi: u32) -> Result<IdPool> {
        let err = self.err("read an id pool from");
        let bounds: Option<(i64, i64)> = c
            .prepare_cached("SELECT lo, hi FROM id_pools WHERE pool = ?1")
            .and_then(|mut s| {
                s.query_row([pool], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(&err)?;
        let rows: Vec<(i64, String, bool)> = c
            .prepare_cached("SELECT id, holder, shared FROM ids WHERE pool = ?1 ORDER BY id, rowid")
            .and_then(|mut s| {
                s.query_map([pool], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(&err)?;
        let as_id = |v: i64| {
            u32::try_from(v).map_err(|_| self.corrupt(format!("id pool {pool} holds id {v}")))
        };
        let mut p = match bounds {
            Some((l, h)) => IdPool::new(as_id(l)?, as_id(h)?),
            None => IdPool::new(lo, hi),
        };
        let mut alone = BTreeSet::new();
        for (id, holder, shared) in rows {
            let id = as_id(id)?;
            p.held.entry(id).or_default().push(holder);
            if shared {
                p.shared.insert(id);
            } else {
                alone.insert(id);
            }
        }
        // Shared only when every holder said so.
        p.shared.retain(|id| !alone.contains(id));
        if p.held.is_empty() {
            return Ok(IdPool::new(lo, hi));
        }
        if (p.lo, p.hi) != (lo, hi) {
            return Err(Error::StoreRangeMismatch {
                path: self.path.clone(),
                stored: format!("{}-{}", p.lo, p.hi),
                wanted: format!("{lo}-{hi}"),
            });
        }
        Ok(p)
    }
}

impl Db {
    /// The pool's bounds checked against `lo`-`hi` (a pool holding nothing takes the new
    /// bounds), and its lowest possibly free id.
    fn pool_next(&self, c: &Connection, pool: &str, lo: u32, hi: u32) -> Result<u32> {
        let err = self.err("read an id pool from");
        let row: Option<(i64, i64, Option<i64>)> = c
            .prepare_cached("SELECT lo, hi, next FROM id_pools WHERE pool = ?1")
            .and_then(|mut s| {
                s.query_row([pool], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(&err)?;
        if let Some((l, h, next)) = row {
            if (l, h) == (i64::from(lo), i64::from(hi)) {
                return Ok(next
                    .and_then(|n| u32::try_from(n).ok())
                    .map_or(lo, |n| n.max(lo)));
            }
            let any: bool = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM ids WHERE pool = ?1)")
                .and_then(|mut s| s.query_row([pool], |r| r.get(0)))
                .map_err(&err)?;
            if any {
                return Err(Error::StoreRangeMismatch {
                    path: self.path.clone(),
                    stored: format!("{l}-{h}"),
                    wanted: format!("{lo}-{hi}"),
                });
            }
        }
        c.prepare_cached(
            "INSERT INTO id_pools(pool, lo, hi) VALUES (?1, ?2, ?3)
             ON CONFLICT(pool) DO UPDATE SET lo = excluded.lo, hi = excluded.hi, next = NULL",
        )
        .and_then(|mut s| s.execute(params![pool, lo, hi]))
        .map_err(self.err("write an id pool to"))?;
        Ok(lo)
    }

    fn set_pool_next(&self, c: &Connection, pool: &str, next: Option<u32>) -> Result<()> {
        c.prepare_cached("UPDATE id_pools SET next = ?2 WHERE pool = ?1")
            .and_then(|mut s| s.execute(params![pool, next]))
            .map(drop)
            .map_err(self.err("write an id pool to"))
    }
}

fn pairs(p: &IdPool) -> BTreeSet<(u32, &str)> {
    p.held
        .iter()
        .flat_map(|(id, hs)| hs.iter().map(move |h| (*id, h.as_str())))
        .collect()
}

impl LabelStore for Db {
    fn update(
        &self,
        range: McsRange,
        f: &mut dyn FnMut(&mut McsState) -> Result<()>,
    ) -> Result<()> {
        self.join_or_write(|c| {
            let (mut state, stale) = self.load_space(c, range)?;
            f(&mut state)?;
            let err = self.err("write the label space to");
            for key in stale {
                c.prepare_cached("DELETE FROM label_spaces WHERE range = ?1")
                    .and_then(|mut s| s.execute([key]))
                    .map_err(&err)?;
            }
            c.prepare_cached(
                "INSERT INTO label_spaces(range, state) VALUES (?1, ?2)
                 ON CONFLICT(range) DO UPDATE SET state = excluded.state",
            )
            .and_then(|mut s| s.execute(params![range.to_string(), state.to_bytes()]))
            .map_err(&err)?;
            Ok(())
        })
    }

    fn update_ids(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        f: &mut dyn FnMut(&mut IdPool) -> Result<()>,
    ) -> Result<()> {
        self.join_or_write(|c| {
            let before = self.load_pool(c, pool, lo, hi)?;
            let mut after = before.clone();
            f(&mut after)?;
            let err = self.err("write an id pool to");
            // The whole pool may have changed: the lowest free id is searched from the low end.
            c.prepare_cached(
                "INSERT INTO id_pools(pool, lo, hi) VALUES (?1, ?2, ?3)
                 ON CONFLICT(pool) DO UPDATE SET lo = excluded.lo, hi = excluded.hi, next = NULL",
            )
            .and_then(|mut s| s.execute(params![pool, after.lo, after.hi]))
            .map_err(&err)?;
            let (old, new) = (pairs(&before), pairs(&after));
            for (id, holder) in old.difference(&new) {
                c.prepare_cached("DELETE FROM ids WHERE pool = ?1 AND id = ?2 AND holder = ?3")
                    .and_then(|mut s| s.execute(params![pool, id, holder]))
                    .map_err(&err)?;
            }
            // In the pool's order, so shared holders keep theirs.
            for (id, hs) in &after.held {
                for h in hs {
                    if !old.contains(&(*id, h.as_str())) {
                        c.prepare_cached(
                            "INSERT INTO ids(pool, id, holder, shared) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![pool, id, h, after.shared.contains(id)])
                        })
                        .map_err(&err)?;
                    }
                }
            }
            for id in before.shared.symmetric_difference(&after.shared) {
                if after.held.contains_key(id) {
                    c.prepare_cached("UPDATE ids SET shared = ?3 WHERE pool = ?1 AND id = ?2")
                        .and_then(|mut s| s.execute(params![pool, id, after.shared.contains(id)]))
                        .map_err(&err)?;
                }
            }
            Ok(())
        })
    }

    /// Indexed lookups only: the holder's own id, else from the pool's lowest possibly free id
    /// up, one point lookup per taken id (each draw moves the mark past its id, each release
    /// below it moves it back), so the cost does not grow with the number of domains.
    fn allocate_id(
        &self,
        pool: &str,
        lo: u32,
        hi: u32,
        holder: &str,
        skip: &dyn Fn(u32) -> bool,
    ) -> Result<u32> {
        self.join_or_write(|c| {
            let mut id = self.pool_next(c, pool, lo, hi)?;
            let err = self.err("read an id pool from");
            let held: Option<i64> = c
                .prepare_cached(
                    "SELECT id FROM ids WHERE pool = ?1 AND holder = ?2 ORDER BY id LIMIT 1",
                )
                .and_then(|mut s| s.query_row(params![pool, holder], |r| r.get(0)).optional())
                .map_err(&err)?;
            if let Some(v) = held {
                return u32::try_from(v)
                    .map_err(|_| self.corrupt(format!("id pool {pool} holds id {v}")));
            }
            let taken = |id: u32| -> Result<bool> {
                c.prepare_cached("SELECT EXISTS (SELECT 1 FROM ids WHERE pool = ?1 AND id = ?2)")
                    .and_then(|mut s| s.query_row(params![pool, id], |r| r.get(0)))
                    .map_err(self.err("read an id pool from"))
            };
            while id <= hi && (skip(id) || taken(id)?) {
                id += 1;
            }
            if id > hi {
                return Err(Error::IdsExhausted {
                    range: format!("uids {lo}-{hi}"),
                });
            }
            c.prepare_cached("INSERT INTO ids(pool, id, holder) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![pool, id, holder]))
                .map_err(self.err("write an id pool to"))?;
            self.set_pool_next(c, pool, id.checked_add(1))?;
            Ok(id)
        })
    }

    fn release_id(&self, pool: &str, lo: u32, hi: u32, id: u32, holder: &str) -> Result<bool> {
        self.join_or_write(|c| {
            let next = self.pool_next(c, pool, lo, hi)?;
            let n = c
                .prepare_cached("DELETE FROM ids WHERE pool = ?1 AND id = ?2 AND holder = ?3")
                .and_then(|mut s| s.execute(params![pool, id, holder]))
                .map_err(self.err("write an id pool to"))?;
            if n > 0 && id < next {
                self.set_pool_next(c, pool, Some(id))?;
            }
            Ok(n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: McsRange = McsRange {
        sensitivity: 0,
        cat_min: 0,
        cat_max: 7,
    };

    #[test]
    fn labels_persist_between_instances_until_exhausted_and_a_changed_range_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store: &dyn LabelStore = &db;
        let a = store.allocate(R).unwrap();
        drop(db);
        let again = Db::open(dir.path()).unwrap();
        let again: &dyn LabelStore = &again;
        for _ in 0..27 {
            assert_ne!(again.allocate(R).unwrap(), a);
        }
        assert!(matches!(
            again.allocate(R),
            Err(Error::LabelsExhausted { .. })
        ));
        let wider = McsRange { cat_max: 9, ..R };
        assert!(matches!(
            again.allocate(wider),
            Err(Error::StoreRangeMismatch { .. })
        ));
    }

    #[test]
    fn an_empty_label_space_of_another_range_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store: &dyn LabelStore = &db;
        store.allocate(R).unwrap();
        // Free every pair: the space is empty, so another range may take over.
        store
            .update(R, &mut |s| {
                *s = McsState::new(R);
                Ok(())
            })
            .unwrap();
        let wider = McsRange { cat_max: 9, ..R };
        store.allocate(wider).unwrap();
        let rows: i64 = rusqlite::Connection::open(db.path())
            .unwrap()
            .query_row("SELECT count(*) FROM label_spaces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_failed_update_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let res = db.update(R, &mut |s| {
            s.allocate(&mut rand::rng())?;
            Err(Error::Config {
                reason: "injected".into(),
            })
        });
        assert!(res.is_err());
        let res = db.update_ids("uids", 10, 20, &mut |p| {
            p.allocate("a", &|_| false)?;
            Err(Error::Config {
                reason: "injected".into(),
            })
        });
        assert!(res.is_err());
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        for table in ["label_spaces", "ids", "id_pools"] {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
    }

    #[test]
    fn id_pools_persist_keep_shared_holders_in_order_and_refuse_a_changed_range() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.update_ids("uids", 10, 12, &mut |p| {
            p.allocate("a", &|_| false)?;
            p.reserve(11, "z", true)?;
            p.reserve(11, "b", true)
        })
        .unwrap();
        drop(db);
        let db = Db::open(dir.path()).unwrap();
        let mut seen = None;
        let r = db.update_ids("uids", 10, 12, &mut |p| {
            seen = Some(p.clone());
            assert_eq!(p.allocate("c", &|_| false)?, 12);
            p.allocate("d", &|_| false).map(drop)
        });
        assert!(matches!(r, Err(Error::IdsExhausted { .. })), "{r:?}");
        let seen = seen.unwrap();
        assert_eq!(seen.held[&10], ["a"]);
        assert_eq!(seen.held[&11], ["z", "b"], "holders keep their order");
        assert!(matches!(
            db.update_ids("uids", 10, 20, &mut |_| Ok(())),
            Err(Error::StoreRangeMismatch { .. })
        ));
        db.update_ids("uids", 10, 12, &mut |p| {
            assert!(p.release(10, "a"));
            assert!(p.release(11, "z"));
            assert!(p.release(11, "b"));
            assert!(p.held.is_empty(), "the failed allocation of c was not kept");
            Ok(())
        })
        .unwrap();
        db.update_ids("uids", 10, 20, &mut |p| {
            assert_eq!((p.lo, p.hi), (10, 20), "an empty pool takes the new range");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn indexed_id_draws_agree_with_the_pool_lowest_free_first_and_reuse_released_ids() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let skip = |id: u32| id == 11;
        let draw = |h: &str| db.allocate_id("uids", 10, 14, h, &skip);
        assert_eq!(draw("a").unwrap(), 10);
        assert_eq!(draw("b").unwrap(), 12, "11 is skipped");
        assert_eq!(draw("a").unwrap(), 10, "a holder gets its own id again");
        assert_eq!(draw("c").unwrap(), 13);
        assert_eq!(draw("d").unwrap(), 14);
        assert!(matches!(draw("e"), Err(Error::IdsExhausted { .. })));
        assert!(db.release_id("uids", 10, 14, 12, "b").unwrap());
        assert!(
            !db.release_id("uids", 10, 14, 12, "b").unwrap(),
            "released once"
        );
        assert_eq!(
            draw("e").unwrap(),
            12,
            "a released id below the mark is found"
        );
        // The whole-pool view sees the same holders, and a change through it (recover's
        // rebuild) sends the search back to the low end.
        db.update_ids("uids", 10, 14, &mut |p| {
            assert_eq!(p.held.get(&12), Some(&vec!["e".to_string()]));
            p.held.remove(&10);
            Ok(())
        })
        .unwrap();
        assert_eq!(draw("f").unwrap(), 10);
        // Other bounds for a pool that holds ids are refused.
        assert!(matches!(
            db.allocate_id("uids", 10, 20, "g", &skip),
            Err(Error::StoreRangeMismatch { .. })
        ));
    }

    #[test]
    fn whether_each_holder_shared_its_id_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = |id: u32, who: &str, shared: bool| {
            let db = Db::open(dir.path()).unwrap();
            db.update_ids("uids", 10, 20, &mut |p| p.reserve(id, who, shared))
        };
        reserve(15, "a", true).unwrap();
        reserve(15, "b", true).expect("both declared it shared");
        reserve(16, "c", false).unwrap();
        assert!(matches!(
            reserve(16, "d", true),
            Err(Error::LabelInUse { .. })
        ));
        let db = Db::open(dir.path()).unwrap();
        let drawn = db.allocate_id("uids", 10, 20, "e", &|_| false).unwrap();
        assert!(db
            .update_ids("uids", 10, 20, &mut |p| p.reserve(drawn, "f", true))
            .is_err());
    }
}
