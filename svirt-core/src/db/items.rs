//! Remembered originals, one row per (attribute model, inode), with the domains holding each.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{params, Connection, Row, ToSql};

use super::{u64_from_sql, u64_to_sql, Ident, Item, ItemState, Tx};
use crate::error::Result;

impl ItemState {
    fn as_sql(self) -> &'static str {
        match self {
            ItemState::Intent => "intent",
            ItemState::Applied => "applied",
        }
    }
}

/// An item row as stored.
struct Raw {
    id: i64,
    model: String,
    dev: i64,
    ino: i64,
    handle: Option<Vec<u8>>,
    root: Vec<u8>,
    rel: Vec<u8>,
    original: Option<String>,
    applied: String,
    ctime_ns: Option<i64>,
    state: String,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        model: r.get(1)?,
        dev: r.get(2)?,
        ino: r.get(3)?,
        handle: r.get(4)?,
        root: r.get(5)?,
        rel: r.get(6)?,
        original: r.get(7)?,
        applied: r.get(8)?,
        ctime_ns: r.get(9)?,
        state: r.get(10)?,
    })
}

/// Items matching `filter`, by id. Holders and share entries are read per item with two small
/// statements: every process compiles its statements anew, and one join per filter cost more
/// to compile than the lookups it saved.
fn select(filter: &str) -> String {
    format!(
        "SELECT i.id, i.model, i.dev, i.ino, i.handle, i.root, i.rel, i.original, i.applied,
                i.ctime_ns, i.state
         FROM items i WHERE {filter} ORDER BY i.id"
    )
}

fn path_to_sql(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn path_from_sql(b: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(b))
}

fn insert_one(c: &Connection, item: &Item) -> rusqlite::Result<i64> {
    let mut ins = c.prepare_cached(
        "INSERT INTO items(model, dev, ino, handle, root, rel, original, applied, ctime_ns, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    ins.execute(params![
        item.model,
        u64_to_sql(item.ident.dev),
        u64_to_sql(item.ident.ino),
        item.ident.handle,
        path_to_sql(&item.root),
        path_to_sql(&item.rel),
        item.original,
        item.applied,
        item.ctime_ns,
        item.state.as_sql(),
    ])?;
    let id = c.last_insert_rowid();
    if let Some(tree) = &item.tree {
        c.prepare_cached("INSERT OR REPLACE INTO trees(item, entries) VALUES (?1, ?2)")?
            .execute(params![id, tree.encode()])?;
    }
    let mut hold =
        c.prepare_cached("INSERT OR IGNORE INTO item_holders(item, domain) VALUES (?1, ?2)")?;
    for h in &item.holders {
        hold.execute(params![id, h])?;
    }
    Ok(id)
}

impl Tx<'_> {
    fn items_where(&self, filter: &str, args: &[&dyn ToSql]) -> Result<Vec<Item>> {
        let raws = self.with(|c| {
            c.prepare_cached(&select(filter))
                .and_then(|mut s| {
                    s.query_map(args, raw)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(self.db.err("read remembered originals from"))
        })?;
        let mut out: Vec<Item> = Vec::with_capacity(raws.len());
        for r in raws {
            let state = match r.state.as_str() {
                "intent" => ItemState::Intent,
                "applied" => ItemState::Applied,
                other => {
                    return Err(self
                        .db
                        .corrupt(format!("item {} has state {other:?}", r.id)))
                }
            };
            let holders = self.with(|c| {
                c.prepare_cached("SELECT domain FROM item_holders WHERE item = ?1 ORDER BY domain")
                    .and_then(|mut s| {
                        s.query_map([r.id], |row| row.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(self.db.err("read remembered originals from"))
            })?;
            out.push(Item {
                id: r.id,
                model: r.model,
                ident: Ident {
                    dev: u64_from_sql(r.dev),
                    ino: u64_from_sql(r.ino),
                    handle: r.handle,
                },
                root: path_from_sql(r.root),
                rel: path_from_sql(r.rel),
                original: r.original,
                applied: r.applied,
                ctime_ns: r.ctime_ns,
                state,
                holders,
                tree: self.tree(r.id)?.map(std::sync::Arc::new),
            });
        }
        Ok(out)
    }

    /// The item of `model` on inode (`dev`, `ino`), if svirt remembers one.
    pub fn item_by_inode(&self, model: &str, dev: u64, ino: u64) -> Result<Option<Item>> {
        let mut v = self.items_where(
            "i.model = ?1 AND i.dev = ?2 AND i.ino = ?3",
            &[&model, &u64_to_sql(dev), &u64_to_sql(ino)],
        )?;
        Ok(if v.is_empty() {
            None
        } else {
            Some(v.swap_remove(0))
        })
    }

    /// Every value svirt applied for `model` to anything it remembers.
    pub fn applied_values(&self, model: &str) -> Result<std::collections::HashSet<String>> {
        self.with(|c| {
            c.prepare_cached("SELECT DISTINCT applied FROM items WHERE model = ?1")
                .and_then(|mut s| {
                    s.query_map([model], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(self.db.err("read remembered originals from"))
        })
    }

    /// Every item on inode (`dev`, `ino`), of any model.
    pub fn items_by_inode(&self, dev: u64, ino: u64) -> Result<Vec<Item>> {
        self.items_where(
            "i.dev = ?1 AND i.ino = ?2",
            &[&u64_to_sql(dev), &u64_to_sql(ino)],
        )
    }

    /// Insert `item` (its `id` is ignored) with its holders; returns the new id.
    pub fn insert_item(&self, item: &Item) -> Result<i64> {
        self.writable("remember an original through a read transaction on")?;
        self.with(|c| insert_one(c, item).map_err(self.db.err("remember an original in")))
    }

    /// Insert many items with one prepared statement; returns their ids in order.
    pub fn insert_items(&self, items: &[Item]) -> Result<Vec<i64>> {
        self.writable("remember originals through a read transaction on")?;
        self.with(|c| {
            items
                .iter()
                .map(|i| insert_one(c, i))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.db.err("remember originals in"))
        })
    }

    /// `domain` holds `item` too (nothing if it already does).
    pub fn add_holder(&self, item: i64, domain: &str) -> Result<()> {
        self.writable("add a holder through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached("INSERT OR IGNORE INTO item_holders(item, domain) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![item, domain]))
                .map(drop)
                .map_err(self.db.err("add a holder in"))
        })
    }

    /// `domain` lets go of `item`; returns how many holders are left.
    pub fn remove_holder(&self, item: i64, domain: &str) -> Result<usize> {
        self.writable("remove a holder through a read transaction on")?;
        self.sql("remove a holder in", |c| {
            c.prepare_cached("DELETE FROM item_holders WHERE item = ?1 AND domain = ?2")
                .and_then(|mut s| s.execute(params![item, domain]))?;
            c.prepare_cached("SELECT count(*) FROM item_holders WHERE item = ?1")
                .and_then(|mut s| s.query_row([item], |r| r.get::<_, i64>(0)))
        })
        .and_then(|n| {
            usize::try_from(n).map_err(|_| self.db.corrupt(format!("item {item} has {n} holders")))
        })
    }

    /// Every item `domain` holds.
    pub fn items_of(&self, domain: &str) -> Result<Vec<Item>> {
        self.items_where(
            "i.id IN (SELECT item FROM item_holders WHERE domain = ?1)",
            &[&domain],
        )
    }

    /// Every item of `model` belonging to the resource `root`.
    pub fn items_of_root(&self, model: &str, root: &Path) -> Result<Vec<Item>> {
        self.items_where(
            "i.model = ?1 AND i.root = ?2",
            &[&model, &path_to_sql(root)],
        )
    }

    /// Items no domain holds.
    pub fn orphan_items(&self) -> Result<Vec<Item>> {
        self.items_where(
            "NOT EXISTS (SELECT 1 FROM item_holders o WHERE o.item = i.id)",
            &[],
        )
    }

    /// Every item.
    pub fn all_items(&self) -> Result<Vec<Item>> {
        self.items_where("1", &[])
    }

    /// The changes of `ids` are made: state `applied`, with `ctime_ns[i]` recorded for `ids[i]`
    /// where given (a missing or `None` entry keeps the recorded ctime).
    pub fn set_applied(&self, ids: &[i64], ctime_ns: &[Option<i64>]) -> Result<()> {
        self.writable("mark originals applied through a read transaction on")?;
        self.sql("mark originals applied in", |c| {
            let mut s = c.prepare_cached(
                "UPDATE items SET state = 'applied', ctime_ns = coalesce(?2, ctime_ns)
                 WHERE id = ?1",
            )?;
            for (n, id) in ids.iter().enumerate() {
                let ctime = ctime_ns.get(n).copied().flatten();
                s.execute(params![id, ctime])?;
            }
            Ok(())
        })
    }

    /// Replace an item's original and guard ctime (a stop found the inode changed, or
    /// verified it unchanged, before restoring it).
    pub fn set_original(
        &self,
        id: i64,
        original: Option<&str>,
        ctime_ns: Option<i64>,
    ) -> Result<()> {
        self.writable("change an original through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached("UPDATE items SET original = ?2, ctime_ns = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, original, ctime_ns]))
                .map(drop)
                .map_err(self.db.err("change an original in"))
        })
    }

    /// The item's inode now sits at `root`/`rel`.
    pub fn update_item_path(&self, id: i64, root: &Path, rel: &Path) -> Result<()> {
        self.writable("move an original through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached("UPDATE items SET root = ?2, rel = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, path_to_sql(root), path_to_sql(rel)]))
                .map(drop)
                .map_err(self.db.err("move an original in"))
        })
    }

    /// Forget items (their holders go with them).
    pub fn delete_items(&self, ids: &[i64]) -> Result<()> {
        self.writable("forget originals through a read transaction on")?;
        self.sql("forget originals in", |c| {
            let mut s = c.prepare_cached("DELETE FROM items WHERE id = ?1")?;
            for id in ids {
                s.execute([Value::Integer(*id)])?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Db;
    use super::*;

    pub(in crate::db) fn item(model: &str, dev: u64, ino: u64, holders: &[&str]) -> Item {
        Item {
            id: 0,
            model: model.into(),
            ident: Ident {
                dev,
                ino,
                handle: Some(vec![1, 2, 3]),
            },
            root: PathBuf::from("/srv/share"),
            rel: PathBuf::from(format!("f{ino}")),
            original: Some(format!("orig{ino}")),
            applied: "applied".into(),
            ctime_ns: None,
            state: ItemState::Intent,
            holders: holders.iter().map(|h| h.to_string()).collect(),
            tree: None,
        }
    }

    #[test]
    fn items_round_trip_with_holders_and_lookups_by_inode_domain_root_and_orphan() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut a = item("dac", u64::MAX, 7, &["vm1", "vm2"]);
        a.rel = PathBuf::new();
        a.original = None;
        let b = item("selinux", u64::MAX, 7, &["vm1"]);
        let mut c = item("dac", 3, 9, &[]);
        c.root = PathBuf::from("/srv/other");
        let ids = db
            .write(|tx| tx.insert_items(&[a.clone(), b.clone(), c.clone()]))
            .unwrap();
        let (a, b, c) = (
            Item { id: ids[0], ..a },
            Item { id: ids[1], ..b },
            Item { id: ids[2], ..c },
        );
        let db = Db::open(dir.path()).unwrap();
        db.read(|tx| {
            assert_eq!(tx.item_by_inode("dac", u64::MAX, 7)?, Some(a.clone()));
            assert_eq!(tx.item_by_inode("dac", u64::MAX, 8)?, None);
            assert_eq!(tx.items_by_inode(u64::MAX, 7)?, vec![a.clone(), b.clone()]);
            assert_eq!(tx.items_of("vm1")?, vec![a.clone(), b.clone()]);
            assert_eq!(tx.items_of("vm2")?, vec![a.clone()]);
            assert_eq!(
                tx.items_of_root("dac", Path::new("/srv/share"))?,
                vec![a.clone()]
            );
            assert_eq!(tx.orphan_items()?, vec![c.clone()]);
            assert_eq!(tx.all_items()?, vec![a.clone(), b.clone(), c.clone()]);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn holders_come_and_go_and_the_count_left_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let id = db
            .write(|tx| tx.insert_item(&item("dac", 1, 2, &["a"])))
            .unwrap();
        db.write(|tx| {
            tx.add_holder(id, "b")?;
            tx.add_holder(id, "b")?;
            assert_eq!(tx.remove_holder(id, "a")?, 1);
            assert_eq!(
                tx.remove_holder(id, "a")?,
                1,
                "removing twice changes nothing"
            );
            assert_eq!(tx.remove_holder(id, "b")?, 0);
            assert_eq!(tx.orphan_items()?.len(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn applied_state_ctime_path_moves_and_deletion_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let ids = db
            .write(|tx| tx.insert_items(&[item("dac", 1, 2, &["a"]), item("dac", 1, 3, &["a"])]))
            .unwrap();
        db.write(|tx| {
            tx.set_applied(&ids, &[Some(123)])?;
            tx.update_item_path(ids[1], Path::new("/srv/share"), Path::new("moved/here"))
        })
        .unwrap();
        let all = db.read(|tx| tx.all_items()).unwrap();
        assert!(all.iter().all(|i| i.state == ItemState::Applied));
        assert_eq!((all[0].ctime_ns, all[1].ctime_ns), (Some(123), None));
        assert_eq!(all[1].rel, Path::new("moved/here"));
        db.write(|tx| tx.delete_items(&ids[..1])).unwrap();
        let left = db.read(|tx| tx.items_of("a")).unwrap();
        assert_eq!(left.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[1]]);
    }

    #[test]
    fn a_second_item_of_one_model_on_one_inode_is_refused_but_unknown_inodes_may_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.write(|tx| tx.insert_item(&item("dac", 1, 2, &["a"])))
            .unwrap();
        assert!(db
            .write(|tx| tx.insert_item(&item("dac", 1, 2, &["b"])))
            .is_err());
        db.write(|tx| tx.insert_items(&[item("dac", 0, 0, &[]), item("dac", 0, 0, &[])]))
            .unwrap();
    }

    #[test]
    fn a_hundred_thousand_items_insert_fast_and_are_found_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let items: Vec<Item> = (1..=100_000)
            .map(|ino| item("dac", 66, ino, &["vm"]))
            .collect();
        let t = std::time::Instant::now();
        let ids = db.write(|tx| tx.insert_items(&items)).unwrap();
        let insert = t.elapsed();
        assert_eq!(ids.len(), 100_000);
        let t = std::time::Instant::now();
        let found = db
            .read(|tx| tx.item_by_inode("dac", 66, 76_543))
            .unwrap()
            .unwrap();
        let lookup = t.elapsed();
        assert_eq!(found.rel, Path::new("f76543"));
        assert_eq!(found.holders, ["vm"]);
        // Printed for the record (`--nocapture`); a benchmark, not a timed test.
        std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("100000 items: insert {insert:?}, lookup {lookup:?}\n").as_bytes(),
        )
        .unwrap();
        // The lookup is an index search, not a scan.
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                select("i.model = ?1 AND i.dev = ?2 AND i.ino = ?3")
            ))
            .unwrap()
            .query_map(params!["dac", 66, 76_543], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("SEARCH i USING INDEX")),
            "{plan:?}"
        );
    }
}
