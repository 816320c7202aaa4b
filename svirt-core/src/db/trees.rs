//! The entries of a directory share, kept with the share root's item as one packed value: a
//! share of 100,000 files is one row, and each distinct original is stored once.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};

use super::Tx;
use crate::error::Result;

/// The entries svirt changed below a share root, with their originals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tree {
    /// When the share's intent was recorded (ns since the epoch): an inode born later is one
    /// the VM made, whatever number it reused.
    pub started_ns: i64,
    /// Each distinct original once; `None` is an absent attribute. The first is the share's
    /// common original: the one the root's mark names for every entry without its own mark.
    pub originals: Vec<Option<String>>,
    pub entries: Vec<TreeEntry>,
}

/// One changed entry of a share.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeEntry {
    /// The path below the share root when changed.
    pub rel: PathBuf,
    /// The inode number (the share never leaves its root's filesystem).
    pub ino: u64,
    /// Index into [`Tree::originals`].
    pub original: u32,
    /// The inode's ctime right after svirt's change, where its original grants privileges.
    pub ctime_ns: Option<i64>,
    /// The entry carries its own `trusted.svirt.*` mark (its original is not the common one).
    pub marked: bool,
    /// The inode's birth time, where reading it gave one: an inode found with this number
    /// but another birth is a new file that reused the number, not the one svirt changed.
    pub birth_ns: Option<i64>,
}

impl Tree {
    /// The original of an entry.
    pub fn original(&self, e: &TreeEntry) -> Option<&str> {
        self.originals
            .get(e.original as usize)
            .and_then(|o| o.as_deref())
    }

    /// The packed form.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.entries.len() * 24);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.started_ns.to_le_bytes());
        put_u32(&mut b, self.originals.len());
        for o in &self.originals {
            match o {
                Some(s) => {
                    b.push(1);
                    put_u32(&mut b, s.len());
                    b.extend_from_slice(s.as_bytes());
                }
                None => b.push(0),
            }
        }
        put_u32(&mut b, self.entries.len());
        for e in &self.entries {
            b.extend_from_slice(&e.ino.to_le_bytes());
            b.extend_from_slice(&e.original.to_le_bytes());
            b.push(
                u8::from(e.ctime_ns.is_some())
                    | (u8::from(e.marked) << 1)
                    | (u8::from(e.birth_ns.is_some()) << 2),
            );
            for t in [e.ctime_ns, e.birth_ns].into_iter().flatten() {
                b.extend_from_slice(&t.to_le_bytes());
            }
            let rel = e.rel.as_os_str().as_bytes();
            put_u32(&mut b, rel.len());
            b.extend_from_slice(rel);
        }
        b
    }

    /// The inverse of [`Tree::encode`]; `None` for bytes it did not write.
    pub fn decode(b: &[u8]) -> Option<Tree> {
        let mut r = Reader { b, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let started_ns = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let n = r.u32()? as usize;
        let mut originals = Vec::with_capacity(n.min(b.len()));
        for _ in 0..n {
            originals.push(match r.take(1)?[0] {
                0 => None,
                1 => {
                    let len = r.u32()? as usize;
                    Some(String::from_utf8(r.take(len)?.to_vec()).ok()?)
                }
                _ => return None,
            });
        }
        let n = r.u32()? as usize;
        let mut entries = Vec::with_capacity(n.min(b.len() / 17));
        for _ in 0..n {
            let ino = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
            let original = r.u32()?;
            if original as usize >= originals.len() {
                return None;
            }
            let flags = r.take(1)?[0];
            if flags & !7 != 0 {
                return None;
            }
            let mut time = |bit: u8| -> Option<Option<i64>> {
                if flags & bit == 0 {
                    return Some(None);
                }
                Some(Some(i64::from_le_bytes(r.take(8)?.try_into().ok()?)))
            };
            let ctime_ns = time(1)?;
            let birth_ns = time(4)?;
            let len = r.u32()? as usize;
            let rel = PathBuf::from(OsString::from_vec(r.take(len)?.to_vec()));
            entries.push(TreeEntry {
                rel,
                ino,
                original,
                ctime_ns,
                marked: flags & 2 != 0,
                birth_ns,
            });
        }
        (r.at == b.len()).then_some(Tree {
            started_ns,
            originals,
            entries,
        })
    }
}

const MAGIC: &[u8] = b"svt2";

fn put_u32(b: &mut Vec<u8>, n: usize) {
    b.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// (id, root, dev, applied, one holder) as selected.
type RootRow = (i64, Vec<u8>, i64, String, Option<String>);

/// A share root svirt keeps entries for, without its entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeRoot {
    pub id: i64,
    pub root: PathBuf,
    pub dev: u64,
    pub applied: String,
    pub holders: Vec<String>,
}

impl Tx<'_> {
    /// Every share root of `model` svirt keeps entries for.
    pub fn tree_roots(&self, model: &str) -> Result<Vec<TreeRoot>> {
        let rows: Vec<RootRow> = self.with(|c| {
            c.prepare_cached(
                "SELECT i.id, i.root, i.dev, i.applied, h.domain
                 FROM items i JOIN trees t ON t.item = i.id
                 LEFT JOIN item_holders h ON h.item = i.id
                 WHERE i.model = ?1 ORDER BY i.id",
            )
            .and_then(|mut s| {
                s.query_map([model], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .map_err(self.db.err("read remembered originals from"))
        })?;
        let mut out: Vec<TreeRoot> = Vec::new();
        for (id, root, dev, applied, holder) in rows {
            if let Some(last) = out.last_mut().filter(|t| t.id == id) {
                last.holders.extend(holder);
                continue;
            }
            out.push(TreeRoot {
                id,
                root: PathBuf::from(OsString::from_vec(root)),
                dev: super::u64_from_sql(dev),
                applied,
                holders: holder.into_iter().collect(),
            });
        }
        Ok(out)
    }

    /// Keep `tree` as the entries of the share root `item` (replacing any before).
    pub fn set_tree(&self, item: i64, tree: &Tree) -> Result<()> {
        self.writable("remember a share's entries through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO trees(item, entries) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![item, tree.encode()]))
                .map(drop)
                .map_err(self.db.err("remember a share's entries in"))
        })
    }

    /// The entries kept with the share root `item`, if any.
    pub fn tree(&self, item: i64) -> Result<Option<Tree>> {
        let bytes: Option<Vec<u8>> = self.with(|c| {
            c.prepare_cached("SELECT entries FROM trees WHERE item = ?1")
                .and_then(|mut s| s.query_row([item], |r| r.get(0)).optional())
                .map_err(self.db.err("read a share's entries from"))
        })?;
        bytes
            .map(|b| {
                Tree::decode(&b).ok_or_else(|| {
                    self.db
                        .corrupt(format!("the share entries of item {item} cannot be read"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_survives_encoding_and_garbage_is_refused() {
        let t = Tree {
            started_ns: 1_800_000_000_000_000_000,
            originals: vec![
                Some("system_u:object_r:default_t:s0".into()),
                None,
                Some("".into()),
            ],
            entries: vec![
                TreeEntry {
                    rel: "a/b".into(),
                    ino: u64::MAX,
                    original: 2,
                    ctime_ns: Some(-5),
                    marked: true,
                    birth_ns: Some(1_700_000_000_123_456_789),
                },
                TreeEntry {
                    rel: PathBuf::from(OsString::from_vec(b"\xff name".to_vec())),
                    ino: 7,
                    original: 0,
                    ctime_ns: None,
                    marked: false,
                    birth_ns: None,
                },
            ],
        };
        let b = t.encode();
        assert_eq!(Tree::decode(&b), Some(t));
        for cut in 0..b.len() {
            assert_eq!(Tree::decode(&b[..cut]), None, "truncated at {cut}");
        }
        let mut bad = b.clone();
        bad.push(0);
        assert_eq!(Tree::decode(&bad), None);
    }
}
