//! The entries of a directory share, kept with the share root's item as one packed value: a
//! share of 100,000 files is one row, and each distinct original is stored once.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

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
    /// The share is being changed in one pass (its value is the domain's alone, drawn for it),
    /// each entry marked with its original before its change unless that original is the
    /// common one: until the start's completion records every entry, `entries` holds only
    /// those journaled here before their change, and an unrecorded entry holding the applied
    /// value has its mark's original, or the common one.
    pub in_progress: bool,
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

    /// The packed form (version 4): each entry's directory is stored once in a table and
    /// referred to by index, its inode number as the difference from the entry before it, and
    /// numbers as variable-length integers, so an entry of a typical share takes about 9 bytes
    /// (version 2 took 25: a share's entries are written at every start, synced and
    /// checkpointed). Version 4 is version 3 with a flags byte after the start instant
    /// ([`Tree::in_progress`]). Version 5 writes an entry's ctime and birth time as the
    /// difference from the entry before it that has one (the first from the start instant):
    /// files made together are born microseconds apart, so 2 or 3 bytes where version 4 took 8
    /// (a 100,000-file share's blob shrank by a third).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.entries.len() * 10);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.started_ns.to_le_bytes());
        b.push(u8::from(self.in_progress));
        put_var(&mut b, self.originals.len() as u64);
        for o in &self.originals {
            match o {
                Some(s) => {
                    b.push(1);
                    put_bytes(&mut b, s.as_bytes());
                }
                None => b.push(0),
            }
        }
        // The directories, in order of first use.
        let mut dirs: Vec<&[u8]> = Vec::new();
        let mut index: HashMap<&[u8], u64> = HashMap::new();
        let mut of_entry = Vec::with_capacity(self.entries.len());
        let mut last: Option<(&[u8], u64)> = None;
        for e in &self.entries {
            let (parent, _) = split_rel(&e.rel);
            let i = match last {
                Some((p, i)) if p == parent => i,
                _ => *index.entry(parent).or_insert_with(|| {
                    dirs.push(parent);
                    dirs.len() as u64 - 1
                }),
            };
            last = Some((parent, i));
            of_entry.push(i);
        }
        put_var(&mut b, dirs.len() as u64);
        for d in &dirs {
            put_bytes(&mut b, d);
        }
        put_var(&mut b, self.entries.len() as u64);
        let mut ino = 0u64;
        let (mut ctime, mut birth) = (self.started_ns, self.started_ns);
        for (e, dir) in self.entries.iter().zip(of_entry) {
            b.push(
                u8::from(e.ctime_ns.is_some())
                    | (u8::from(e.marked) << 1)
                    | (u8::from(e.birth_ns.is_some()) << 2),
            );
            put_var(&mut b, dir);
            put_bytes(&mut b, split_rel(&e.rel).1);
            put_var(&mut b, zigzag(e.ino.wrapping_sub(ino) as i64));
            ino = e.ino;
            put_var(&mut b, u64::from(e.original));
            for (t, last) in [(e.ctime_ns, &mut ctime), (e.birth_ns, &mut birth)] {
                if let Some(t) = t {
                    put_var(&mut b, zigzag(t.wrapping_sub(*last)));
                    *last = t;
                }
            }
        }
        b
    }

    /// The inverse of [`Tree::encode`] (and of version 2's); `None` for bytes it did not
    /// write.
    pub fn decode(b: &[u8]) -> Option<Tree> {
        let mut r = Reader { b, at: 0 };
        let version = match r.take(MAGIC.len())? {
            m if m == MAGIC => 5,
            m if m == MAGIC_V4 => 4,
            m if m == MAGIC_V3 => 3,
            m if m == MAGIC_V2 => return decode_v2(r),
            _ => return None,
        };
        let started_ns = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let in_progress = match version >= 4 {
            true => match r.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return None,
            },
            false => false,
        };
        let n = r.count()?;
        let mut originals = Vec::with_capacity(n);
        for _ in 0..n {
            originals.push(match r.take(1)?[0] {
                0 => None,
                1 => Some(String::from_utf8(r.bytes()?.to_vec()).ok()?),
                _ => return None,
            });
        }
        let n = r.count()?;
        let mut dirs = Vec::with_capacity(n);
        for _ in 0..n {
            let d = PathBuf::from(OsString::from_vec(r.bytes()?.to_vec()));
            // Relative, and never above the share root.
            if !only_normal(&d) {
                return None;
            }
            dirs.push(d);
        }
        let n = r.count()?;
        let mut entries = Vec::with_capacity(n);
        let mut ino = 0u64;
        let (mut ctime, mut birth) = (started_ns, started_ns);
        for _ in 0..n {
            let flags = r.take(1)?[0];
            if flags & !7 != 0 {
                return None;
            }
            let dir = dirs.get(usize::try_from(r.var()?).ok()?)?;
            let name = r.bytes()?;
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return None;
            }
            ino = ino.wrapping_add(unzigzag(r.var()?) as u64);
            let original = u32::try_from(r.var()?).ok()?;
            if original as usize >= originals.len() {
                return None;
            }
            let (ctime_ns, birth_ns) = match version {
                5 => r.delta_times(flags, &mut ctime, &mut birth)?,
                _ => r.times(flags)?,
            };
            entries.push(TreeEntry {
                rel: dir.join(OsStr::from_bytes(name)),
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
            in_progress,
        })
    }
}

/// Version 2 of the packed form (fixed-width numbers, each entry's whole path), still read so a
/// share started by an earlier svirt can be stopped.
fn decode_v2(mut r: Reader<'_>) -> Option<Tree> {
    let b = r.b;
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
        let (ctime_ns, birth_ns) = r.times(flags)?;
        let len = r.u32()? as usize;
        let rel = PathBuf::from(OsString::from_vec(r.take(len)?.to_vec()));
        // Below the share root, as version 3 requires of its directories and names.
        if rel.as_os_str().is_empty() || !only_normal(&rel) {
            return None;
        }
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
        in_progress: false,
    })
}

/// An entry's directory and name, split at the last '/' (an entry's path is names joined by
/// single slashes: as `Path::parent` and `Path::file_name` would split it, without parsing
/// its components).
fn split_rel(rel: &Path) -> (&[u8], &[u8]) {
    let b = rel.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&b""[..], b),
    }
}

/// Relative, and never above the share root: every component a name.
fn only_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

const MAGIC: &[u8] = b"svt5";
const MAGIC_V4: &[u8] = b"svt4";
const MAGIC_V3: &[u8] = b"svt3";
const MAGIC_V2: &[u8] = b"svt2";

/// A number in 7-bit groups, low first, the high bit set on every byte but the last.
fn put_var(b: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        b.push((n as u8) | 0x80);
        n >>= 7;
    }
    b.push(n as u8);
}

fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    put_var(b, s.len() as u64);
    b.extend_from_slice(s);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
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

    /// An entry's ctime and birth time, each present when its bit (1, 4) of `flags` is set.
    fn times(&mut self, flags: u8) -> Option<(Option<i64>, Option<i64>)> {
        let mut time = |bit: u8| -> Option<Option<i64>> {
            if flags & bit == 0 {
                return Some(None);
            }
            Some(Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?)))
        };
        Some((time(1)?, time(4)?))
    }

    /// [`Reader::times`] of version 5: each the difference from `ctime` or `birth`, which it
    /// then becomes.
    fn delta_times(
        &mut self,
        flags: u8,
        ctime: &mut i64,
        birth: &mut i64,
    ) -> Option<(Option<i64>, Option<i64>)> {
        let mut time = |bit: u8, last: &mut i64| -> Option<Option<i64>> {
            if flags & bit == 0 {
                return Some(None);
            }
            *last = last.wrapping_add(unzigzag(self.var()?));
            Some(Some(*last))
        };
        Some((time(1, ctime)?, time(4, birth)?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A number [`put_var`] wrote: at most 10 bytes, the last without its high bit, and no
    /// bits beyond 64.
    fn var(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A count of things still to read, each at least one byte: never more than the bytes left
    /// (so a damaged count cannot make a huge allocation).
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.var()?).ok()?;
        (n <= self.b.len() - self.at).then_some(n)
    }

    /// Bytes [`put_bytes`] wrote.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.var()?).ok()?;
        self.take(n)
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
    /// Every share root of `model` svirt keeps entries for. Read from the shares' table
    /// outwards (`CROSS JOIN` keeps it the outer loop): every start and stop asks, so its cost
    /// follows the number of shares, not the number of items every running domain holds.
    pub fn tree_roots(&self, model: &str) -> Result<Vec<TreeRoot>> {
        let rows: Vec<RootRow> = self.with(|c| {
            c.prepare_cached(
                "SELECT i.id, i.root, i.dev, i.applied, h.domain
                 FROM trees t CROSS JOIN items i ON i.id = t.item
                 LEFT JOIN item_holders h ON h.item = i.id
                 WHERE i.model = ?1 ORDER BY t.item",
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
                // Differences that overflow an i64 still come back.
                TreeEntry {
                    rel: "c".into(),
                    ino: 8,
                    original: 1,
                    ctime_ns: Some(i64::MAX),
                    marked: false,
                    birth_ns: Some(i64::MIN),
                },
                TreeEntry {
                    rel: "d".into(),
                    ino: 9,
                    original: 1,
                    ctime_ns: Some(i64::MIN),
                    marked: false,
                    birth_ns: Some(i64::MAX),
                },
            ],
            in_progress: true,
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

    /// A share's entries as version 2 wrote them.
    fn encode_v2(t: &Tree) -> Vec<u8> {
        let mut b = b"svt2".to_vec();
        b.extend_from_slice(&t.started_ns.to_le_bytes());
        b.extend_from_slice(&(t.originals.len() as u32).to_le_bytes());
        for o in &t.originals {
            match o {
                Some(s) => {
                    b.push(1);
                    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
                None => b.push(0),
            }
        }
        b.extend_from_slice(&(t.entries.len() as u32).to_le_bytes());
        for e in &t.entries {
            b.extend_from_slice(&e.ino.to_le_bytes());
            b.extend_from_slice(&e.original.to_le_bytes());
            b.push(
                u8::from(e.ctime_ns.is_some())
                    | (u8::from(e.marked) << 1)
                    | (u8::from(e.birth_ns.is_some()) << 2),
            );
            for x in [e.ctime_ns, e.birth_ns].into_iter().flatten() {
                b.extend_from_slice(&x.to_le_bytes());
            }
            let rel = e.rel.as_os_str().as_bytes();
            b.extend_from_slice(&(rel.len() as u32).to_le_bytes());
            b.extend_from_slice(rel);
        }
        b
    }

    /// A share of `n` files in 100 directories, as a walk finds it.
    fn share(n: u64) -> Tree {
        Tree {
            started_ns: 1_800_000_000_000_000_000,
            originals: vec![Some("system_u:object_r:default_t:s0".into())],
            entries: (0..n)
                .map(|i| TreeEntry {
                    rel: format!("d{}/{}", i / (n / 100).max(1), i).into(),
                    ino: 5_000_000 + i * 2,
                    original: 0,
                    ctime_ns: None,
                    marked: false,
                    birth_ns: None,
                })
                .collect(),
            in_progress: false,
        }
    }

    #[test]
    fn a_version_3_tree_still_reads_as_complete_and_a_bad_flags_byte_is_refused() {
        let t = share(300);
        let v4 = t.encode();
        // Version 3 is version 4 without the flags byte.
        let mut v3 = b"svt3".to_vec();
        v3.extend_from_slice(&v4[4..12]);
        v3.extend_from_slice(&v4[13..]);
        assert_eq!(Tree::decode(&v3), Some(t.clone()));
        let mut walking = t.clone();
        walking.in_progress = true;
        assert_eq!(Tree::decode(&walking.encode()), Some(walking));
        let mut bad = v4.clone();
        bad[12] = 2;
        assert_eq!(Tree::decode(&bad), None);
    }

    #[test]
    fn a_version_4_tree_with_times_still_reads() {
        // One entry with a ctime and a birth time, each as 8 fixed bytes.
        let mut b = b"svt4".to_vec();
        b.extend_from_slice(&100i64.to_le_bytes());
        b.push(0); // flags
        b.extend_from_slice(&[1, 0]); // one original: absent
        b.push(1);
        put_bytes(&mut b, b"a");
        b.push(1); // one entry
        b.push(1 | 4); // flags: a ctime and a birth time
        b.push(0); // its directory
        put_bytes(&mut b, b"f");
        b.extend_from_slice(&[2, 0]); // inode 1, original 0
        b.extend_from_slice(&(-7i64).to_le_bytes());
        b.extend_from_slice(&42i64.to_le_bytes());
        let t = Tree::decode(&b).unwrap();
        assert_eq!(t.started_ns, 100);
        assert_eq!(
            (t.entries[0].ctime_ns, t.entries[0].birth_ns),
            (Some(-7), Some(42))
        );
        assert_eq!(t.entries[0].rel, PathBuf::from("a/f"));
        assert_eq!(Tree::decode(&t.encode()), Some(t));
    }

    #[test]
    fn birth_times_of_files_made_together_take_a_few_bytes_each() {
        let mut t = share(10_000);
        for (i, e) in t.entries.iter_mut().enumerate() {
            // Made 20 us apart, a day before the share's start.
            e.birth_ns = Some(t.started_ns - 86_400_000_000_000 + i as i64 * 20_000);
        }
        let with = t.encode().len();
        let without = share(10_000).encode().len();
        assert_eq!(Tree::decode(&t.encode()), Some(t));
        let per_entry = (with - without) as f64 / 10_000.0;
        assert!(per_entry <= 3.01, "{per_entry} bytes per birth time");
    }

    #[test]
    fn a_tree_written_by_version_2_still_reads() {
        let t = share(500);
        assert_eq!(Tree::decode(&encode_v2(&t)), Some(t.clone()));
        let v2 = encode_v2(&t);
        for cut in [4, 12, 20, v2.len() - 1] {
            assert_eq!(Tree::decode(&v2[..cut]), None, "truncated at {cut}");
        }
    }

    #[test]
    fn a_version_2_entry_path_that_would_leave_the_share_is_refused() {
        for rel in ["../x", "/etc/shadow", "a/../../b", "./a", ""] {
            let mut t = share(100);
            t.entries[7].rel = PathBuf::from(rel);
            assert_eq!(Tree::decode(&encode_v2(&t)), None, "{rel:?}");
        }
    }

    #[test]
    fn a_typical_share_packs_into_under_half_the_bytes_of_version_2() {
        let t = share(100_000);
        let (v3, v2) = (t.encode().len(), encode_v2(&t).len());
        assert_eq!(Tree::decode(&t.encode()), Some(t));
        assert!(v3 * 2 < v2, "version 3 takes {v3} bytes, version 2 {v2}");
    }

    #[test]
    fn entry_names_that_would_leave_the_share_are_refused() {
        let one = |dir: &[u8], name: &[u8]| {
            let mut b = b"svt4".to_vec();
            b.extend_from_slice(&0i64.to_le_bytes());
            b.push(0); // flags
            b.extend_from_slice(&[1, 0]); // one original: absent
            b.push(1);
            put_bytes(&mut b, dir);
            b.push(1); // one entry
            b.push(0); // flags
            b.push(0); // its directory
            put_bytes(&mut b, name);
            b.extend_from_slice(&[2, 0]); // inode 1, original 0
            b
        };
        assert!(Tree::decode(&one(b"a/b", b"c")).is_some());
        for (dir, name) in [
            (&b"a"[..], &b".."[..]),
            (b"a", b"."),
            (b"a", b""),
            (b"a", b"x/y"),
            (b"../a", b"c"),
            (b"/etc", b"c"),
            (b"a/../..", b"c"),
        ] {
            assert_eq!(
                Tree::decode(&one(dir, name)),
                None,
                "{:?}/{:?}",
                String::from_utf8_lossy(dir),
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn variable_length_numbers_round_trip_and_overlong_ones_are_refused() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_var(&mut b, n);
            let mut r = Reader { b: &b, at: 0 };
            assert_eq!(r.var(), Some(n));
            assert_eq!(r.at, b.len());
        }
        for n in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        let over = [0xff; 10];
        assert_eq!(Reader { b: &over, at: 0 }.var(), None);
        let eleven = [
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        assert_eq!(Reader { b: &eleven, at: 0 }.var(), None);
    }
}
