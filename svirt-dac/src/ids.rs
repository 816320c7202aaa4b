//! uid ranges and `user:group` labels.

use std::path::Path;

use crate::error::DacError;

/// An inclusive id range `lo-hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub lo: u32,
    pub hi: u32,
}

impl IdRange {
    /// Parse `"64000-64999"`. At least two ids (one VM and the shared group), none of them 0.
    pub fn parse(text: &str) -> Result<Self, DacError> {
        let bad = |reason: &str| DacError::BadRange {
            range: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| bad("expected LOW-HIGH"))?;
        let lo: u32 = a.trim().parse().map_err(|_| bad("LOW is not a number"))?;
        let hi: u32 = b.trim().parse().map_err(|_| bad("HIGH is not a number"))?;
        if lo == 0 || lo >= hi {
            return Err(bad("need 0 < LOW < HIGH"));
        }
        if hi >= 65534 && lo <= 65534 {
            return Err(bad("must not include 65534 (nobody)"));
        }
        Ok(IdRange { lo, hi })
    }

    /// Refuse a range that overlaps an entry of a passwd- or group-format file.
    pub fn check_free(&self, file: &Path, what: &'static str) -> Result<(), DacError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // No such database: no accounts to overlap.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(DacError::AccountsUnreadable {
                    file: file.display().to_string(),
                    source,
                })
            }
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                continue;
            }
            if let Ok(id) = f[2].parse::<u32>() {
                if (self.lo..=self.hi).contains(&id) {
                    return Err(DacError::RangeOverlap {
                        range: format!("{}-{}", self.lo, self.hi),
                        what,
                        name: f[0].to_owned(),
                        id,
                        file: file.display().to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn lookup(file: &Path, name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().unwrap_or(0))))?
    })
}

/// Parse a static DAC label `user:group`: names (looked up in `passwd`/`group`) or `+uid:+gid`.
pub fn parse_owner(label: &str, passwd: &Path, group: &Path) -> Result<(u32, u32), DacError> {
    let bad = |reason: String| DacError::BadLabel {
        label: label.to_owned(),
        reason,
    };
    let (u, g) = label
        .split_once(':')
        .ok_or_else(|| bad("expected user:group".into()))?;
    let uid = match u.strip_prefix('+') {
        Some(n) => n.parse().map_err(|_| bad(format!("{u} is not +NUMBER")))?,
        None => lookup(passwd, u)
            .map(|(id, _)| id)
            .ok_or_else(|| bad(format!("no user {u} in {}", passwd.display())))?,
    };
    let gid = match g.strip_prefix('+') {
        Some(n) => n.parse().map_err(|_| bad(format!("{g} is not +NUMBER")))?,
        None => lookup(group, g)
            .map(|(id, _)| id)
            .ok_or_else(|| bad(format!("no group {g} in {}", group.display())))?,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_parses_and_refuses_nonsense() {
        assert_eq!(
            IdRange::parse("64000-64999").unwrap(),
            IdRange {
                lo: 64000,
                hi: 64999
            }
        );
        for bad in ["", "64000", "0-10", "10-10", "a-b", "65000-66000"] {
            assert!(IdRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn range_overlapping_an_existing_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0::/root:/bin/sh\nqemu:x:64010:64010::/:/bin/false\n",
        )
        .unwrap();
        let e = IdRange::parse("64000-64999")
            .unwrap()
            .check_free(&p, "user")
            .unwrap_err();
        assert!(e.to_string().contains("qemu (64010)"), "{e}");
        IdRange::parse("65000-65010")
            .unwrap()
            .check_free(&p, "user")
            .unwrap();
        IdRange::parse("65000-65010")
            .unwrap()
            .check_free(&dir.path().join("none"), "user")
            .unwrap();
        let e = IdRange::parse("65000-65010")
            .unwrap()
            .check_free(dir.path(), "user")
            .unwrap_err();
        assert!(
            matches!(e, DacError::AccountsUnreadable { .. }),
            "a directory cannot be read: {e}"
        );
    }

    #[test]
    fn owner_labels_by_number_or_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        let g = dir.path().join("group");
        std::fs::write(&p, "qemu:x:107:108::/:/bin/false\n").unwrap();
        std::fs::write(&g, "kvm:x:109:\n").unwrap();
        assert_eq!(
            parse_owner("+64001:+64002", &p, &g).unwrap(),
            (64001, 64002)
        );
        assert_eq!(parse_owner("qemu:kvm", &p, &g).unwrap(), (107, 109));
        assert!(parse_owner("nobodyhere:kvm", &p, &g).is_err());
        assert!(parse_owner("+x:+1", &p, &g).is_err());
        assert!(parse_owner("107", &p, &g).is_err());
    }
}
