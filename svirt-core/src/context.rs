//! Security contexts `user:role:type[:range]` with MLS/MCS levels and ranges.
//!
//! Parsing is strict and never panics; printing is canonical: categories sorted, runs of three or
//! more written `cA.cB` (so `c4,c5,c6` prints `c4.c6`), a range whose ends are equal printed once.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The largest category or sensitivity number accepted (SELinux policies use c0..c1023).
pub const MAX_CATEGORY: u16 = 1023;
/// The largest sensitivity number accepted.
pub const MAX_SENSITIVITY: u16 = 1023;

/// Words of a [`CategorySet`]: one bit per category `c0..=c1023`.
const WORDS: usize = (MAX_CATEGORY as usize + 1) / 64;

/// A set of MCS categories, one bit per category: the manager's range `c0.c1023`, read at every
/// call, is 1,024 categories.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CategorySet([u64; WORDS]);

impl CategorySet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from category numbers (each at most [`MAX_CATEGORY`]; a larger one is left out).
    pub fn from_iter_checked(cats: impl IntoIterator<Item = u16>) -> Self {
        let mut set = CategorySet::new();
        for c in cats {
            debug_assert!(c <= MAX_CATEGORY, "category c{c} out of range");
            set.insert(c);
        }
        set
    }

    fn insert(&mut self, c: u16) {
        if c <= MAX_CATEGORY {
            self.0[usize::from(c / 64)] |= 1 << (c % 64);
        }
    }

    /// Every category `a..=b` (both at most [`MAX_CATEGORY`]).
    fn insert_run(&mut self, a: u16, b: u16) {
        for c in a..=b.min(MAX_CATEGORY) {
            self.insert(c);
        }
    }

    /// True when every category of `other` is in `self`.
    pub fn is_superset(&self, other: &CategorySet) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| b & !a == 0)
    }

    /// The categories in both sets.
    pub fn intersection(&self, other: &CategorySet) -> CategorySet {
        CategorySet(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    /// The categories in either set.
    pub fn union(&self, other: &CategorySet) -> CategorySet {
        CategorySet(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    /// The number of categories.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The categories in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let bit = w.trailing_zeros();
                    w &= w - 1;
                    (i * 64) as u16 + bit as u16
                })
            })
        })
    }

    /// The lowest and highest category, if the set is one contiguous run `cMIN.cMAX`.
    pub fn as_contiguous(&self) -> Option<(u16, u16)> {
        let lo = self.iter().next()?;
        let hi = self.iter().last()?;
        (usize::from(hi - lo) + 1 == self.len()).then_some((lo, hi))
    }

    fn parse(input: &str, whole: &str) -> Result<Self> {
        let mut set = CategorySet::new();
        for item in input.split(',') {
            match item.split_once('.') {
                Some((a, b)) => {
                    let a = parse_num(a, 'c', MAX_CATEGORY, whole)?;
                    let b = parse_num(b, 'c', MAX_CATEGORY, whole)?;
                    if a >= b {
                        return Err(syntax(
                            whole,
                            format!("category run {item} is not ascending"),
                        ));
                    }
                    set.insert_run(a, b);
                }
                None => set.insert(parse_num(item, 'c', MAX_CATEGORY, whole)?),
            }
        }
        Ok(set)
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Ordered as the sorted sequences of their categories.
impl Ord for CategorySet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for CategorySet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cats: Vec<u16> = self.iter().collect();
        let mut i = 0;
        let mut first = true;
        while i < cats.len() {
            let start = cats[i];
            let mut j = i;
            while j + 1 < cats.len() && cats[j + 1] == cats[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match j - i {
                0 => write!(f, "c{start}")?,
                1 => write!(f, "c{start},c{}", cats[j])?,
                _ => write!(f, "c{start}.c{}", cats[j])?,
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// One MLS level: a sensitivity and a category set, `s0:c1,c2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Level {
    pub sensitivity: u16,
    pub categories: CategorySet,
}

impl Level {
    /// True when `self` dominates `other`: sensitivity at least as high, categories a superset.
    pub fn dominates(&self, other: &Level) -> bool {
        self.sensitivity >= other.sensitivity && self.categories.is_superset(&other.categories)
    }

    fn parse_in(input: &str, whole: &str) -> Result<Self> {
        let (sens, cats) = match input.split_once(':') {
            Some((s, c)) => (s, Some(c)),
            None => (input, None),
        };
        let sensitivity = parse_num(sens, 's', MAX_SENSITIVITY, whole)?;
        let categories = match cats {
            Some(c) => CategorySet::parse(c, whole)?,
            None => CategorySet::new(),
        };
        Ok(Level {
            sensitivity,
            categories,
        })
    }
}

impl FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Level::parse_in(s, s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.sensitivity)?;
        if !self.categories.is_empty() {
            write!(f, ":{}", self.categories)?;
        }
        Ok(())
    }
}

/// An MLS range `low[-high]`; `high` always dominates `low`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MlsRange {
    pub low: Level,
    pub high: Level,
}

impl MlsRange {
    /// A range of one level.
    pub fn single(level: Level) -> Self {
        MlsRange {
            low: level.clone(),
            high: level,
        }
    }

    /// True when `other` lies within `self`.
    pub fn contains(&self, other: &MlsRange) -> bool {
        self.high.dominates(&other.high) && other.low.dominates(&self.low)
    }

    /// The part two ranges have in common, or [`Error::IncomparableRanges`].
    pub fn intersect(&self, other: &MlsRange) -> Result<MlsRange> {
        let low = Level {
            sensitivity: self.low.sensitivity.max(other.low.sensitivity),
            categories: self.low.categories.union(&other.low.categories),
        };
        let high = Level {
            sensitivity: self.high.sensitivity.min(other.high.sensitivity),
            categories: self.high.categories.intersection(&other.high.categories),
        };
        if high.dominates(&low) {
            Ok(MlsRange { low, high })
        } else {
            Err(Error::IncomparableRanges {
                a: self.to_string(),
                b: other.to_string(),
            })
        }
    }

    fn parse_in(input: &str, whole: &str) -> Result<Self> {
        let (low, high) = match input.split_once('-') {
            Some((l, h)) => (Level::parse_in(l, whole)?, Level::parse_in(h, whole)?),
            None => {
                let l = Level::parse_in(input, whole)?;
                (l.clone(), l)
            }
        };
        if !high.dominates(&low) {
            return Err(syntax(
                whole,
                format!("high level {high} does not dominate low level {low}"),
            ));
        }
        Ok(MlsRange { low, high })
    }
}

impl FromStr for MlsRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MlsRange::parse_in(s, s)
    }
}

impl fmt::Display for MlsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// A full security context `user:role:type[:range]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecurityContext {
    pub user: String,
    pub role: String,
    pub type_: String,
    pub range: Option<MlsRange>,
}

impl SecurityContext {
    /// The same context with another range.
    pub fn with_range(&self, range: MlsRange) -> Self {
        SecurityContext {
            range: Some(range),
            ..self.clone()
        }
    }

    /// The same context with another type.
    pub fn with_type(&self, type_: &str) -> Self {
        SecurityContext {
            type_: type_.to_owned(),
            ..self.clone()
        }
    }
}

impl FromStr for SecurityContext {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.splitn(4, ':');
        let mut field = |what: &str| -> Result<String> {
            let v = parts.next().unwrap_or("");
            if v.is_empty() {
                return Err(syntax(s, format!("missing {what}")));
            }
            if !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(syntax(
                    s,
                    format!("{what} {v:?} has characters outside [A-Za-z0-9_.]"),
                ));
            }
            Ok(v.to_owned())
        };
        let user = field("user")?;
        let role = field("role")?;
        let type_ = field("type")?;
        let range = match parts.next() {
            Some(r) => Some(MlsRange::parse_in(r, s)?),
            None => None,
        };
        Ok(SecurityContext {
            user,
            role,
            type_,
            range,
        })
    }
}

impl fmt::Display for SecurityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.user, self.role, self.type_)?;
        if let Some(r) = &self.range {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

fn syntax(input: &str, reason: String) -> Error {
    Error::ContextSyntax {
        input: input.to_owned(),
        reason,
    }
}

fn parse_num(item: &str, prefix: char, max: u16, whole: &str) -> Result<u16> {
    let digits = item
        .strip_prefix(prefix)
        .ok_or_else(|| syntax(whole, format!("{item:?} should start with '{prefix}'")))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 5 {
        return Err(syntax(
            whole,
            format!("{item:?} is not '{prefix}' followed by a number"),
        ));
    }
    let n: u32 = digits
        .parse()
        .map_err(|_| syntax(whole, format!("{item:?} is not a number")))?;
    if n > u32::from(max) {
        return Err(syntax(whole, format!("{item:?} is above {prefix}{max}")));
    }
    Ok(n as u16)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_full_context_with_mls_range() {
        let c: SecurityContext = "system_u:system_r:svirt_t:s2-s3:c0.c1023".parse().unwrap();
        assert_eq!(c.type_, "svirt_t");
        let r = c.range.unwrap();
        assert_eq!(r.low.sensitivity, 2);
        assert_eq!(r.high.sensitivity, 3);
        assert_eq!(r.high.categories.len(), 1024);
        assert!(r.low.categories.is_empty());
    }

    #[test]
    fn canonical_print_collapses_runs_of_three_or_more() {
        let l: Level = "s0:c4,c5,c6".parse().unwrap();
        assert_eq!(l.to_string(), "s0:c4.c6");
        let l: Level = "s0:c6,c4,c5,c9,c10".parse().unwrap();
        assert_eq!(l.to_string(), "s0:c4.c6,c9,c10");
        let r: MlsRange = "s0-s0:c0.c1023".parse().unwrap();
        assert_eq!(r.to_string(), "s0-s0:c0.c1023");
        let r: MlsRange = "s0:c1,c2-s0:c1,c2".parse().unwrap();
        assert_eq!(r.to_string(), "s0:c1,c2");
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        for bad in [
            "",
            "a:b",
            "u:r:t:",
            "u:r:t:x0",
            "u:r:t:s0:c1.c1",
            "u:r:t:s0:c2.c1",
            "u:r:t:s0:c1024",
            "u:r:t:s0:c",
            "u:r:t:s0:c1,,c2",
            "u:r:t:s1-s0",
            "u:r:t:s0:c1-s0:c2",
            "u:r:t$:s0",
            "u:r:t:s0:c99999999999",
        ] {
            match bad.parse::<SecurityContext>() {
                Err(Error::ContextSyntax { .. }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn dominance_needs_sensitivity_and_categories() {
        let hi: Level = "s1:c0.c3".parse().unwrap();
        assert!(hi.dominates(&"s0:c1,c2".parse().unwrap()));
        assert!(!hi.dominates(&"s0:c4".parse().unwrap()));
        assert!(!hi.dominates(&"s2".parse().unwrap()));
    }

    #[test]
    fn intersection_of_ranges() {
        let a: MlsRange = "s0-s3:c0.c10".parse().unwrap();
        let b: MlsRange = "s1-s5:c5.c20".parse().unwrap();
        assert_eq!(a.intersect(&b).unwrap().to_string(), "s1-s3:c5.c10");
        let c: MlsRange = "s0:c1".parse().unwrap();
        let d: MlsRange = "s0:c2".parse().unwrap();
        assert!(matches!(
            c.intersect(&d),
            Err(Error::IncomparableRanges { .. })
        ));
    }

    #[test]
    fn range_containment() {
        let mgr: MlsRange = "s0-s0:c0.c1023".parse().unwrap();
        assert!(mgr.contains(&"s0:c1,c2".parse().unwrap()));
        assert!(!mgr.contains(&"s1:c1".parse().unwrap()));
    }

    fn arb_level() -> impl Strategy<Value = Level> {
        (
            0u16..16,
            prop::collection::btree_set(0u16..=MAX_CATEGORY, 0..40),
        )
            .prop_map(|(s, c)| Level {
                sensitivity: s,
                categories: CategorySet::from_iter_checked(c),
            })
    }

    proptest! {
        /// The bitset answers as a sorted set of its categories does.
        #[test]
        fn category_sets_agree_with_a_sorted_set(
            a in prop::collection::btree_set(0u16..=MAX_CATEGORY, 0..40),
            b in prop::collection::btree_set(0u16..=MAX_CATEGORY, 0..40),
            run in (0u16..=MAX_CATEGORY, 0u16..=MAX_CATEGORY))
        {
            let (x, y) = (CategorySet::from_iter_checked(a.clone()), CategorySet::from_iter_checked(b.clone()));
            prop_assert_eq!(x.iter().collect::<Vec<_>>(), a.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(x.len(), a.len());
            prop_assert_eq!(x.is_empty(), a.is_empty());
            prop_assert_eq!(x.is_superset(&y), a.is_superset(&b));
            prop_assert_eq!(x.union(&y).iter().collect::<Vec<_>>(), a.union(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(x.intersection(&y).iter().collect::<Vec<_>>(), a.intersection(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            let (lo, hi) = (run.0.min(run.1), run.0.max(run.1));
            let r = CategorySet::from_iter_checked(lo..=hi);
            prop_assert_eq!(r.as_contiguous(), Some((lo, hi)));
            let contiguous = a.first().zip(a.last()).filter(|(l, h)| usize::from(**h - **l) + 1 == a.len());
            prop_assert_eq!(x.as_contiguous(), contiguous.map(|(l, h)| (*l, *h)));
        }
    }

    proptest! {
        #[test]
        fn context_round_trips_through_text(
            user in "[a-z_]{1,8}", role in "[a-z_]{1,8}", ty in "[a-z_]{1,12}",
            a in arb_level(), b in arb_level())
        {
            let high = Level { sensitivity: a.sensitivity.max(b.sensitivity),
                               categories: a.categories.union(&b.categories) };
            let ctx = SecurityContext { user, role, type_: ty,
                                        range: Some(MlsRange { low: a, high }) };
            let text = ctx.to_string();
            let back: SecurityContext = text.parse().unwrap();
            prop_assert_eq!(&back, &ctx);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn parser_never_panics(s in ".{0,60}") {
            let _ = s.parse::<SecurityContext>();
        }

        #[test]
        fn intersection_lies_within_both(a in arb_level(), b in arb_level(), c in arb_level(), d in arb_level()) {
            let mk = |x: Level, y: Level| MlsRange {
                high: Level { sensitivity: x.sensitivity.max(y.sensitivity),
                              categories: x.categories.union(&y.categories) },
                low: x };
            let r1 = mk(a, b);
            let r2 = mk(c, d);
            if let Ok(i) = r1.intersect(&r2) {
                prop_assert!(r1.contains(&i));
                prop_assert!(r2.contains(&i));
            }
        }
    }
}
