//! The MCS label space and its allocator.
//!
//! A dynamic label is a pair of categories `cA,cB` (A < B) at the manager's low sensitivity. The
//! pairs of an `n`-category range are numbered `0..n(n-1)/2`; a bitset of blocked pairs with a free
//! count per block lets [`McsState::allocate`] draw uniformly from the free pairs in time that does
//! not depend on occupancy, and report exhaustion at once instead of retrying forever.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::context::{CategorySet, Level, MlsRange, MAX_CATEGORY};
use crate::error::{Error, Result};

/// The smallest category range that may hand out pairs.
pub const MIN_CATEGORIES: u32 = 8;

/// The sensitivity and category run that dynamic labels are drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McsRange {
    pub sensitivity: u16,
    pub cat_min: u16,
    pub cat_max: u16,
}

impl McsRange {
    /// The default range `s0:c0.c1023`.
    pub const DEFAULT: McsRange = McsRange {
        sensitivity: 0,
        cat_min: 0,
        cat_max: MAX_CATEGORY,
    };

    /// The allocation range implied by the manager's own range: its low sensitivity and its
    /// categories `cMIN.cMAX` (none given means `c0.c1023`).
    pub fn from_manager_range(range: Option<&MlsRange>) -> Result<Self> {
        let Some(range) = range else {
            return Ok(Self::DEFAULT);
        };
        let sensitivity = range.low.sensitivity;
        let cats = &range.high.categories;
        if cats.is_empty() {
            return Ok(McsRange {
                sensitivity,
                ..Self::DEFAULT
            });
        }
        let (cat_min, cat_max) = cats.as_contiguous().ok_or_else(|| Error::Config {
            reason: format!("manager range {range} must have one category run cMIN.cMAX"),
        })?;
        let r = McsRange {
            sensitivity,
            cat_min,
            cat_max,
        };
        if r.count() < MIN_CATEGORIES {
            return Err(Error::CategoryRangeTooSmall {
                range: range.to_string(),
                count: r.count(),
            });
        }
        Ok(r)
    }

    /// The number of categories.
    pub fn count(&self) -> u32 {
        u32::from(self.cat_max - self.cat_min) + 1
    }

    /// The number of distinct pairs, n(n-1)/2.
    pub fn total_pairs(&self) -> u32 {
        let n = self.count();
        n * (n - 1) / 2
    }

    /// The index of the pair of absolute categories `a < b`, if both lie in the range.
    pub fn pair_index(&self, a: u16, b: u16) -> Option<u32> {
        if a >= b || a < self.cat_min || b > self.cat_max {
            return None;
        }
        let n = self.count();
        let (x, y) = (u32::from(a - self.cat_min), u32::from(b - self.cat_min));
        Some(x * (2 * n - x - 1) / 2 + (y - x - 1))
    }

    /// The absolute categories of pair `index`.
    pub fn pair_at(&self, index: u32) -> (u16, u16) {
        let n = self.count();
        // Row x holds the pairs (x, y) for y in x+1..n; it starts at x(2n-x-1)/2.
        let nf = f64::from(n);
        let mut x = ((2.0 * nf - 1.0 - ((2.0 * nf - 1.0).powi(2) - 8.0 * f64::from(index)).sqrt())
            / 2.0)
            .floor()
            .max(0.0) as u32;
        let start = |x: u32| x * (2 * n - x - 1) / 2;
        while x > 0 && start(x) > index {
            x -= 1;
        }
        while x + 1 < n && start(x + 1) <= index {
            x += 1;
        }
        let y = index - start(x) + x + 1;
        (self.cat_min + x as u16, self.cat_min + y as u16)
    }

    /// The level of pair `(a, b)`: `sN:cA,cB`.
    pub fn level(&self, (a, b): (u16, u16)) -> Level {
        Level {
            sensitivity: self.sensitivity,
            categories: CategorySet::from_iter_checked([a, b]),
        }
    }

    /// The pair of a level, if it is a dynamic-style label of this range.
    pub fn pair_of(&self, level: &Level) -> Option<(u16, u16)> {
        if level.sensitivity != self.sensitivity || level.categories.len() != 2 {
            return None;
        }
        let mut it = level.categories.iter();
        let (a, b) = (it.next()?, it.next()?);
        self.pair_index(a, b).map(|_| (a, b))
    }
}

impl fmt::Display for McsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s{}:c{}.c{}",
            self.sensitivity, self.cat_min, self.cat_max
        )
    }
}

const BLOCK_WORDS: usize = 64;

/// A bitset over pair indexes with a count of set bits per block of 4096.
#[derive(Clone, Debug)]
struct PairBits {
    words: Vec<u64>,
    block_set: Vec<u32>,
    len: u32,
    set: u32,
}

impl PairBits {
    fn new(len: u32) -> Self {
        let nwords = (len as usize).div_ceil(64);
        PairBits {
            words: vec![0; nwords],
            block_set: vec![0; nwords.div_ceil(BLOCK_WORDS)],
            len,
            set: 0,
        }
    }

    fn get(&self, i: u32) -> bool {
        self.words[i as usize / 64] & (1 << (i % 64)) != 0
    }

    /// Set bit `i`; true if it was clear.
    fn insert(&mut self, i: u32) -> bool {
        let w = i as usize / 64;
        let m = 1u64 << (i % 64);
        if self.words[w] & m != 0 {
            return false;
        }
        self.words[w] |= m;
        self.block_set[w / BLOCK_WORDS] += 1;
        self.set += 1;
        true
    }

    /// Clear bit `i`; true if it was set.
    fn remove(&mut self, i: u32) -> bool {
        let w = i as usize / 64;
        let m = 1u64 << (i % 64);
        if self.words[w] & m == 0 {
            return false;
        }
        self.words[w] &= !m;
        self.block_set[w / BLOCK_WORDS] -= 1;
        self.set -= 1;
        true
    }

    fn free(&self) -> u32 {
        self.len - self.set
    }

    /// The index of the `r`-th clear bit (0-based). `r` must be below `free()`.
    fn select_clear(&self, mut r: u32) -> u32 {
        for (b, &set) in self.block_set.iter().enumerate() {
            let first = b * BLOCK_WORDS;
            let last = (first + BLOCK_WORDS).min(self.words.len());
            let bits_in_block = ((last * 64).min(self.len as usize) - first * 64) as u32;
            let free = bits_in_block - set;
            if r >= free {
                r -= free;
                continue;
            }
            for w in first..last {
                let valid = ((self.len as usize - w * 64).min(64)) as u32;
                let mask = if valid == 64 {
                    u64::MAX
                } else {
                    (1u64 << valid) - 1
                };
                let clear = !self.words[w] & mask;
                let n = clear.count_ones();
                if r >= n {
                    r -= n;
                    continue;
                }
                let mut c = clear;
                for _ in 0..r {
                    c &= c - 1;
                }
                return (w * 64) as u32 + c.trailing_zeros();
            }
        }
        unreachable!("select_clear called with r >= free")
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// The set bits, in increasing order.
    fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some((w * 64) as u32 + bit)
            })
        })
    }

    /// The set bits as little-endian `u32` indexes, increasing.
    fn to_list(&self) -> Vec<u8> {
        self.iter_set().flat_map(u32::to_le_bytes).collect()
    }

    /// Read [`PairBits::to_list`]: every index below `len`, strictly increasing.
    fn from_list(len: u32, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(4) {
            return None;
        }
        let mut bits = PairBits::new(len);
        let mut last = None;
        for chunk in bytes.chunks_exact(4) {
            let i = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if i >= len || last.is_some_and(|l| l >= i) {
                return None;
            }
            bits.insert(i);
            last = Some(i);
        }
        Some(bits)
    }

    fn from_bytes(len: u32, bytes: &[u8]) -> Option<Self> {
        let mut bits = PairBits::new(len);
        if bytes.len() != bits.words.len() * 8 {
            return None;
        }
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            bits.words[i] = u64::from_le_bytes(a);
        }
        let tail = len % 64;
        if tail != 0 && bits.words.last().copied().unwrap_or(0) >> tail != 0 {
            return None;
        }
        for (w, word) in bits.words.iter().enumerate() {
            bits.block_set[w / BLOCK_WORDS] += word.count_ones();
            bits.set += word.count_ones();
        }
        Some(bits)
    }
}

/// A label reserved by name rather than drawn: static labels, and labels shared on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedReservation {
    /// The canonical range text.
    pub range: String,
    /// The domains holding it.
    pub holders: Vec<String>,
    /// Whether the holders declared it shared.
    pub shared: bool,
}

/// The state of the label space: drawn pairs, fixed reservations, and the blocked view of both.
#[derive(Clone, Debug)]
pub struct McsState {
    range: McsRange,
    allocated: PairBits,
    fixed: Vec<FixedReservation>,
    /// The drawn pairs and every pair a fixed reservation blocks; `None` while there is no fixed
    /// reservation, when it would be a copy of `allocated` (64 KiB for `c0.c1023`, built at
    /// every start and stop).
    blocked: Option<PairBits>,
}

impl McsState {
    /// An empty label space over `range`.
    pub fn new(range: McsRange) -> Self {
        let n = range.total_pairs();
        McsState {
            range,
            allocated: PairBits::new(n),
            fixed: Vec::new(),
            blocked: None,
        }
    }

    /// The pairs that cannot be drawn.
    fn blocked(&self) -> &PairBits {
        self.blocked.as_ref().unwrap_or(&self.allocated)
    }

    /// Mark pair `i` drawn.
    fn insert_drawn(&mut self, i: u32) {
        self.allocated.insert(i);
        if let Some(b) = self.blocked.as_mut() {
            b.insert(i);
        }
    }

    /// The range labels are drawn from.
    pub fn range(&self) -> McsRange {
        self.range
    }

    /// The number of pairs that can still be drawn.
    pub fn free(&self) -> u32 {
        self.blocked().free()
    }

    /// The number of pairs drawn or reserved as dynamic labels.
    pub fn allocated(&self) -> u32 {
        self.allocated.set
    }

    /// The fixed reservations.
    pub fn fixed(&self) -> &[FixedReservation] {
        &self.fixed
    }

    /// Draw a free pair uniformly at random. Fails at once with [`Error::LabelsExhausted`].
    pub fn allocate(&mut self, rng: &mut impl Rng) -> Result<Level> {
        let free = self.blocked().free();
        if free == 0 {
            return Err(Error::LabelsExhausted {
                range: self.range.to_string(),
                total: u64::from(self.range.total_pairs()),
            });
        }
        let i = self.blocked().select_clear(rng.random_range(0..free));
        self.insert_drawn(i);
        Ok(self.range.level(self.range.pair_at(i)))
    }

    /// Mark a dynamic pair as held again, as after a manager restart. Idempotent: a pair that is
    /// already drawn stays drawn (Ok(false)); a pair blocked by a fixed reservation is refused.
    pub fn reserve_dynamic(&mut self, level: &Level) -> Result<bool> {
        let (a, b) = self
            .range
            .pair_of(level)
            .ok_or_else(|| Error::LabelOutsideRange {
                label: level.to_string(),
                range: self.range.to_string(),
            })?;
        let i = self.range.pair_index(a, b).unwrap_or_default();
        if self.allocated.get(i) {
            return Ok(false);
        }
        if let Some(f) = self.fixed.iter().find(|f| self.conflicts(f, i)) {
            return Err(Error::LabelInUse {
                label: level.to_string(),
                holders: format!("static label {} of {}", f.range, f.holders.join(", ")),
            });
        }
        self.insert_drawn(i);
        Ok(true)
    }

    /// Reserve a label by name for `holder` (a static label). A label held by another domain is
    /// refused unless both declared it shared; a label whose categories overlap a drawn pair is
    /// refused, since one domain could then read the other's files.
    pub fn reserve_fixed(&mut self, range: &MlsRange, holder: &str, shared: bool) -> Result<()> {
        let key = range.to_string();
        if let Some(f) = self.fixed.iter_mut().find(|f| f.range == key) {
            if f.holders.iter().any(|h| h == holder) {
                return Ok(());
            }
            if !(f.shared && shared) {
                return Err(Error::LabelInUse {
                    label: key,
                    holders: format!("domain {}", f.holders.join(", ")),
                });
            }
            f.holders.push(holder.to_owned());
            return Ok(());
        }
        let entry = FixedReservation {
            range: key.clone(),
            holders: vec![holder.to_owned()],
            shared,
        };
        let clashes = self
            .conflicting_pairs(&entry)
            .filter(|&i| self.allocated.get(i))
            .count();
        if clashes > 0 {
            return Err(Error::LabelInUse {
                label: key,
                holders: format!("{clashes} running domain(s) with overlapping dynamic labels"),
            });
        }
        let pairs: Vec<u32> = self.conflicting_pairs(&entry).collect();
        let blocked = self.blocked.get_or_insert_with(|| self.allocated.clone());
        for i in pairs {
            blocked.insert(i);
        }
        self.fixed.push(entry);
        Ok(())
    }

    /// Release a label held by `holder`. True if something was released.
    pub fn release(&mut self, range: &MlsRange, holder: &str) -> bool {
        let key = range.to_string();
        if let Some(pos) = self.fixed.iter().position(|f| f.range == key) {
            let f = &mut self.fixed[pos];
            let before = f.holders.len();
            f.holders.retain(|h| h != holder);
            let released = f.holders.len() != before;
            if f.holders.is_empty() {
                self.fixed.remove(pos);
                self.rebuild_blocked();
            }
            return released;
        }
        if range.low != range.high {
            return false;
        }
        let Some((a, b)) = self.range.pair_of(&range.low) else {
            return false;
        };
        let i = self.range.pair_index(a, b).unwrap_or_default();
        if !self.allocated.remove(i) {
            return false;
        }
        if !self.fixed.iter().any(|f| self.conflicts(f, i)) {
            if let Some(b) = self.blocked.as_mut() {
                b.remove(i);
            }
        }
        true
    }

    /// True if the dynamic pair of `level` is drawn.
    pub fn is_allocated(&self, level: &Level) -> bool {
        self.range
            .pair_of(level)
            .and_then(|(a, b)| self.range.pair_index(a, b))
            .is_some_and(|i| self.allocated.get(i))
    }

    fn rebuild_blocked(&mut self) {
        if self.fixed.is_empty() {
            self.blocked = None;
            return;
        }
        let mut blocked = self.allocated.clone();
        for f in &self.fixed {
            for i in self.conflicting_pairs(f) {
                blocked.insert(i);
            }
        }
        self.blocked = Some(blocked);
    }

    /// The pairs a fixed reservation blocks: those whose categories it covers, or, for a single
    /// category, every pair containing it. Only reservations at the allocation sensitivity count.
    fn conflicting_pairs<'a>(&'a self, f: &FixedReservation) -> Box<dyn Iterator<Item = u32> + 'a> {
        let Ok(range) = f.range.parse::<MlsRange>() else {
            return Box::new(std::iter::empty());
        };
        if range.low.sensitivity != self.range.sensitivity {
            return Box::new(std::iter::empty());
        }
        let r = self.range;
        let cats: Vec<u16> = range
            .high
            .categories
            .iter()
            .filter(|&c| c >= r.cat_min && c <= r.cat_max)
            .collect();
        match cats.len() {
            0 => Box::new(std::iter::empty()),
            1 => {
                let c = cats[0];
                Box::new(
                    (r.cat_min..=r.cat_max)
                        .filter(move |&o| o != c)
                        .filter_map(move |o| r.pair_index(c.min(o), c.max(o))),
                )
            }
            _ => Box::new((0..cats.len()).flat_map(move |x| {
                let cats = cats.clone();
                (x + 1..cats.len()).filter_map(move |y| r.pair_index(cats[x], cats[y]))
            })),
        }
    }

    fn conflicts(&self, f: &FixedReservation, pair: u32) -> bool {
        let Ok(range) = f.range.parse::<MlsRange>() else {
            return false;
        };
        if range.low.sensitivity != self.range.sensitivity {
            return false;
        }
        let (a, b) = self.range.pair_at(pair);
        let cats = &range.high.categories;
        match cats.len() {
            0 => false,
            1 => cats.iter().any(|c| c == a || c == b),
            _ => cats.is_superset(&CategorySet::from_iter_checked([a, b])),
        }
    }

    /// The compact on-disk form: a header line of JSON, then the drawn pairs: as a list of
    /// indexes (version 2) while that is shorter than the bitset, as a host runs far fewer domains
    /// than there are pairs, else as the bitset (version 1). Reading and writing the list costs
    /// a few bytes per running domain instead of the whole 64 KiB bitset of `c0.c1023` on every
    /// start and stop.
    pub fn to_bytes(&self) -> Vec<u8> {
        let list = (self.allocated.set as usize) * 4 < self.allocated.words.len() * 8;
        let header = Header {
            version: if list { 2 } else { 1 },
            range: self.range,
            fixed: self.fixed.clone(),
            pairs: list.then_some(self.allocated.set),
        };
        let mut out = b"SVIRT-MCS\n".to_vec();
        out.extend(serde_json::to_vec(&header).unwrap_or_default());
        out.push(b'\n');
        if list {
            out.extend(self.allocated.to_list());
        } else {
            out.extend(self.allocated.to_bytes());
        }
        out
    }

    /// Read the on-disk form; an error text says how it is damaged.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let rest = bytes
            .strip_prefix(b"SVIRT-MCS\n")
            .ok_or("missing SVIRT-MCS magic")?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("missing header line")?;
        let header: Header =
            serde_json::from_slice(&rest[..nl]).map_err(|e| format!("bad header: {e}"))?;
        if header.version != 1 && header.version != 2 {
            return Err(format!("unknown version {}", header.version));
        }
        let r = header.range;
        if r.cat_min >= r.cat_max || r.cat_max > MAX_CATEGORY {
            return Err(format!("bad range {r}"));
        }
        let body = &rest[nl + 1..];
        let allocated = if header.version == 2 {
            PairBits::from_list(r.total_pairs(), body)
                .filter(|bits| header.pairs == Some(bits.set))
                .ok_or("pair list is cut short, out of range or out of order")?
        } else {
            PairBits::from_bytes(r.total_pairs(), body).ok_or("bitset has the wrong length")?
        };
        // The blocked view is built from the drawn pairs by `rebuild_blocked`, once.
        let mut state = McsState {
            range: r,
            blocked: None,
            allocated,
            fixed: header.fixed,
        };
        state.rebuild_blocked();
        Ok(state)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    range: McsRange,
    fixed: Vec<FixedReservation>,
    /// Version 2: how many indexes the list holds, so a list cut at an index boundary is damage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pairs: Option<u32>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn small() -> McsRange {
        McsRange {
            sensitivity: 0,
            cat_min: 0,
            cat_max: 7,
        }
    }

    #[test]
    fn manager_range_gives_low_sensitivity_and_category_run() {
        let r: MlsRange = "s2-s3:c10.c20".parse().unwrap();
        let m = McsRange::from_manager_range(Some(&r)).unwrap();
        assert_eq!((m.sensitivity, m.cat_min, m.cat_max), (2, 10, 20));
        let r: MlsRange = "s0".parse().unwrap();
        assert_eq!(
            McsRange::from_manager_range(Some(&r)).unwrap(),
            McsRange::DEFAULT
        );
        assert_eq!(
            McsRange::from_manager_range(None).unwrap(),
            McsRange::DEFAULT
        );
    }

    #[test]
    fn fewer_than_eight_categories_is_an_error() {
        let r: MlsRange = "s0-s0:c0.c6".parse().unwrap();
        assert!(matches!(
            McsRange::from_manager_range(Some(&r)),
            Err(Error::CategoryRangeTooSmall { count: 7, .. })
        ));
        let r: MlsRange = "s0-s0:c0,c5".parse().unwrap();
        assert!(matches!(
            McsRange::from_manager_range(Some(&r)),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn pair_numbering_is_a_bijection() {
        for r in [
            small(),
            McsRange {
                sensitivity: 0,
                cat_min: 5,
                cat_max: 40,
            },
            McsRange::DEFAULT,
        ] {
            let mut seen = 0u32;
            for a in r.cat_min..=r.cat_max {
                for b in a + 1..=r.cat_max {
                    let i = r.pair_index(a, b).unwrap();
                    assert_eq!(i, seen, "pairs are numbered in order");
                    assert_eq!(r.pair_at(i), (a, b));
                    seen += 1;
                }
            }
            assert_eq!(seen, r.total_pairs());
        }
        assert_eq!(McsRange::DEFAULT.total_pairs(), 523_776);
    }

    #[test]
    fn eight_categories_give_exactly_28_distinct_pairs_then_exhaustion() {
        let mut s = McsState::new(small());
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = HashSet::new();
        for _ in 0..28 {
            let l = s.allocate(&mut rng).unwrap();
            assert_eq!(l.categories.len(), 2);
            assert!(seen.insert(l.to_string()), "duplicate {l}");
        }
        assert!(matches!(
            s.allocate(&mut rng),
            Err(Error::LabelsExhausted { total: 28, .. })
        ));
    }

    #[test]
    fn release_makes_a_pair_drawable_again() {
        let mut s = McsState::new(small());
        let mut rng = StdRng::seed_from_u64(2);
        let all: Vec<Level> = (0..28).map(|_| s.allocate(&mut rng).unwrap()).collect();
        assert!(s.release(&MlsRange::single(all[7].clone()), "x"));
        assert!(
            !s.release(&MlsRange::single(all[7].clone()), "x"),
            "double release is a no-op"
        );
        assert_eq!(s.allocate(&mut rng).unwrap(), all[7]);
    }

    #[test]
    fn draws_cover_every_free_pair_uniformly() {
        // With 20 of 28 pairs taken, each of the 8 free pairs should come up about 1/8 of the time.
        let mut rng = StdRng::seed_from_u64(3);
        let mut base = McsState::new(small());
        for _ in 0..20 {
            base.allocate(&mut rng).unwrap();
        }
        let mut counts = std::collections::HashMap::new();
        for _ in 0..8000 {
            let mut s = base.clone();
            *counts
                .entry(s.allocate(&mut rng).unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 8);
        for (l, c) in counts {
            assert!((800..1200).contains(&c), "{l} drawn {c} times of 8000");
        }
    }

    #[test]
    fn static_pair_is_never_drawn_and_duplicate_static_is_refused() {
        let mut s = McsState::new(small());
        let st: MlsRange = "s0:c0,c1".parse().unwrap();
        s.reserve_fixed(&st, "mls1", false).unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..27 {
            assert_ne!(s.allocate(&mut rng).unwrap().to_string(), "s0:c0,c1");
        }
        assert!(matches!(
            s.allocate(&mut rng),
            Err(Error::LabelsExhausted { .. })
        ));
        let e = s.reserve_fixed(&st, "mls2", false).unwrap_err();
        assert!(e.to_string().contains("mls1"), "{e}");
    }

    #[test]
    fn shared_static_label_needs_both_sides_shared() {
        let mut s = McsState::new(small());
        let st: MlsRange = "s0:c2,c3".parse().unwrap();
        s.reserve_fixed(&st, "a", true).unwrap();
        assert!(s.reserve_fixed(&st, "b", false).is_err());
        s.reserve_fixed(&st, "b", true).unwrap();
        assert!(s.release(&st, "a"));
        assert_eq!(s.free(), 27, "still held by b");
        assert!(s.release(&st, "b"));
        assert_eq!(s.free(), 28);
    }

    #[test]
    fn single_category_static_blocks_every_pair_containing_it() {
        let mut s = McsState::new(small());
        s.reserve_fixed(&"s0:c3".parse().unwrap(), "one", false)
            .unwrap();
        assert_eq!(s.free(), 28 - 7);
        let mut rng = StdRng::seed_from_u64(5);
        while let Ok(l) = s.allocate(&mut rng) {
            assert!(!l.categories.iter().any(|c| c == 3), "{l} contains c3");
        }
    }

    #[test]
    fn drawn_pairs_stay_blocked_as_static_labels_come_and_go() {
        // 8 categories: 28 pairs. One drawn, then a static label blocking the 7 pairs with c2.
        let mut s = McsState::new(small());
        let mut rng = StdRng::seed_from_u64(8);
        let c0c1: Level = "s0:c0,c1".parse().unwrap();
        assert!(s.reserve_dynamic(&c0c1).unwrap());
        let c2: MlsRange = "s0:c2".parse().unwrap();
        s.reserve_fixed(&c2, "st", false).unwrap();
        assert_eq!(s.free(), 28 - 1 - 7);
        assert!(s.release(&MlsRange::single(c0c1.clone()), "dyn"));
        assert_eq!(
            s.free(),
            28 - 7,
            "a released pair is drawable while a static label is held"
        );
        let has_c2 = |l: &Level| l.categories.iter().any(|c| c == 2);
        let mut drawn = std::collections::BTreeSet::new();
        while let Ok(l) = s.allocate(&mut rng) {
            assert!(!has_c2(&l), "{l} drawn under the static label s0:c2");
            assert!(drawn.insert(l.to_string()), "{l} drawn twice");
        }
        assert_eq!(drawn.len(), 21);
        // The static label goes: its 7 pairs, and only they, are free again.
        assert!(s.release(&c2, "st"));
        assert_eq!(s.free(), 7);
        while let Ok(l) = s.allocate(&mut rng) {
            assert!(has_c2(&l), "{l} was drawn already");
            assert!(drawn.insert(l.to_string()), "{l} drawn twice");
        }
        assert_eq!(drawn.len(), 28);
        // With no static label left, a released pair is the only one to draw.
        assert!(s.release(&MlsRange::single(c0c1.clone()), "dyn"));
        assert_eq!(s.free(), 1);
        assert_eq!(s.allocate(&mut rng).unwrap(), c0c1);
    }

    #[test]
    fn static_overlapping_a_running_dynamic_pair_is_refused() {
        let mut s = McsState::new(small());
        let mut rng = StdRng::seed_from_u64(6);
        let l = s.allocate(&mut rng).unwrap();
        let e = s
            .reserve_fixed(&MlsRange::single(l), "st", false)
            .unwrap_err();
        assert!(matches!(e, Error::LabelInUse { .. }));
    }

    #[test]
    fn reserve_dynamic_is_idempotent_and_respects_static() {
        let mut s = McsState::new(small());
        let l: Level = "s0:c4,c5".parse().unwrap();
        assert!(s.reserve_dynamic(&l).unwrap());
        assert!(!s.reserve_dynamic(&l).unwrap());
        s.reserve_fixed(&"s0:c6,c7".parse().unwrap(), "st", false)
            .unwrap();
        assert!(s.reserve_dynamic(&"s0:c6,c7".parse().unwrap()).is_err());
        assert!(s.reserve_dynamic(&"s1:c1,c2".parse().unwrap()).is_err());
    }

    #[test]
    fn bytes_round_trip_and_full_space_fits_in_a_mebibyte() {
        let mut s = McsState::new(McsRange::DEFAULT);
        let mut rng = StdRng::seed_from_u64(7);
        while s.allocate(&mut rng).is_ok() {}
        assert_eq!(s.allocated(), 523_776);
        s.release(&"s0:c1,c2".parse().unwrap(), "x");
        let bytes = s.to_bytes();
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let back = McsState::from_bytes(&bytes).unwrap();
        assert_eq!(back.free(), 1);
        assert!(!back.is_allocated(&"s0:c1,c2".parse().unwrap()));
        assert!(McsState::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(McsState::from_bytes(b"garbage").is_err());
    }

    #[test]
    fn few_drawn_pairs_are_stored_as_a_list_that_reads_back_and_refuses_damage() {
        let mut s = McsState::new(McsRange::DEFAULT);
        let mut rng = StdRng::seed_from_u64(11);
        let drawn: Vec<Level> = (0..1000).map(|_| s.allocate(&mut rng).unwrap()).collect();
        s.reserve_fixed(&"s0:c3,c9".parse().unwrap(), "st", false)
            .unwrap();
        let bytes = s.to_bytes();
        assert!(bytes.len() < 4200, "{} bytes for 1000 pairs", bytes.len());
        let back = McsState::from_bytes(&bytes).unwrap();
        assert_eq!(back.allocated(), 1000);
        assert_eq!(back.free(), s.free());
        assert!(drawn.iter().all(|l| back.is_allocated(l)));
        assert_eq!(back.fixed(), s.fixed());
        // Cut inside an index or at its boundary, and a list whose indexes repeat, are damage.
        assert!(McsState::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(McsState::from_bytes(&bytes[..bytes.len() - 4]).is_err());
        let magic = b"SVIRT-MCS\n".len();
        let nl = magic + bytes[magic..].iter().position(|&b| b == b'\n').unwrap();
        let header = |n: u32| {
            let text = String::from_utf8(bytes[..nl + 1].to_vec()).unwrap();
            text.replace("\"pairs\":1000", &format!("\"pairs\":{n}"))
                .into_bytes()
        };
        let mut twice = header(2);
        twice.extend(5u32.to_le_bytes());
        twice.extend(5u32.to_le_bytes());
        assert!(McsState::from_bytes(&twice).is_err());
        let mut outside = header(1);
        outside.extend(McsRange::DEFAULT.total_pairs().to_le_bytes());
        assert!(McsState::from_bytes(&outside).is_err());
    }

    #[test]
    fn a_stored_bitset_of_an_earlier_version_still_reads() {
        let mut s = McsState::new(small());
        let mut rng = StdRng::seed_from_u64(3);
        let l = s.allocate(&mut rng).unwrap();
        let mut v1 = b"SVIRT-MCS\n".to_vec();
        v1.extend(
            serde_json::to_vec(&Header {
                version: 1,
                range: small(),
                fixed: Vec::new(),
                pairs: None,
            })
            .unwrap(),
        );
        v1.push(b'\n');
        v1.extend(s.allocated.to_bytes());
        let back = McsState::from_bytes(&v1).unwrap();
        assert!(back.is_allocated(&l));
        assert_eq!(back.allocated(), 1);
    }

    proptest! {
        #[test]
        fn allocations_are_unique_and_inside_the_range(lo in 0u16..500, width in 7u16..60, n in 0usize..400, seed: u64) {
            let r = McsRange { sensitivity: 0, cat_min: lo, cat_max: lo + width };
            let mut s = McsState::new(r);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut seen = HashSet::new();
            for _ in 0..n.min(r.total_pairs() as usize) {
                let l = s.allocate(&mut rng).unwrap();
                let (a, b) = r.pair_of(&l).unwrap();
                prop_assert!(a >= lo && b <= lo + width && a < b);
                prop_assert!(seen.insert((a, b)));
            }
        }
    }
}
