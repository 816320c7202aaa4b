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
        let number = |t: &str, which: &str| -> Result<u32, DacError> {
            let n: u64 = t
                .trim()
                .parse()
                .map_err(|_| bad(&format!("{which} is not a number")))?;
            u32::try_from(n)
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| {
                    bad(&format!(
                        "{which} does not fit: ids go up to 4294967294 (4294967295 is (uid_t)-1, \"no change\")"
                    ))
                })
        };
        let lo = number(a, "LOW")?;
        let hi = number(b, "HIGH")?;
        if lo == 0 {
            return Err(bad("must not include 0 (root)"));
        }
        if lo >= hi {
            return Err(bad(
                "need LOW < HIGH (one VM id and the shared group at least)",
            ));
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
            // name:password:id:...
            let mut f = line.splitn(4, ':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Ok(id) = id.parse::<u32>() {
                if (self.lo..=self.hi).contains(&id) {
                    return Err(DacError::RangeOverlap {
                        range: format!("{}-{}", self.lo, self.hi),
                        what,
                        name: name.to_owned(),
                        id,
                        file: file.display().to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The name of the entry of a passwd- or group-format file with id `id`, if any.
pub fn name_of(file: &Path, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[2].parse::<u32>() == Ok(id)).then(|| f[0].to_owned())
    })
}

/// The highest system group id: `SYS_GID_MAX` of a login.defs file, else `GID_MIN - 1`, else
/// 999 (the shadow suite's defaults, which Debian and Fedora keep).
pub fn sys_gid_max(login_defs: &Path) -> u32 {
    let text = std::fs::read_to_string(login_defs).unwrap_or_default();
    // The first line of each key whose value is a number counts; one pass over a file that is
    // mostly comments.
    let (mut sys_max, mut gid_min) = (None, None);
    for l in text.lines() {
        let l = l.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("SYS_GID_MAX"), Some(v)) if sys_max.is_none() => sys_max = v.parse().ok(),
            (Some("GID_MIN"), Some(v)) if gid_min.is_none() => gid_min = v.parse().ok(),
            _ => {}
        }
    }
    sys_max
        .or_else(|| gid_min.map(|m: u32| m.saturating_sub(1)))
        .unwrap_or(999)
}

/// Refuse a shared group that is root's, a system group's (at most `sys_max`), nobody's or
/// (gid_t)-1: every VM process holds it as a supplementary group.
pub fn check_shared_group(gid: u32, sys_max: u32) -> Result<(), DacError> {
    let reason = if gid == 0 {
        "it is root's group".to_owned()
    } else if gid <= sys_max {
        format!("it lies in the system group range 0-{sys_max} (SYS_GID_MAX of login.defs); every VM process would hold it")
    } else if gid == 65534 || gid == u32::MAX {
        "it is nobody's group or (gid_t)-1".to_owned()
    } else {
        return Ok(());
    };
    Err(DacError::BadSharedGroup { gid, reason })
}

/// Refuse a static label that would run a VM as root or as an account the host has.
pub fn check_static_owner(
    label: &str,
    (uid, gid): (u32, u32),
    passwd: &Path,
    group: &Path,
) -> Result<(), DacError> {
    let refuse = |reason: String| DacError::AccountLabel {
        label: label.to_owned(),
        reason,
    };
    if uid == 0 || gid == 0 {
        return Err(refuse("uid or gid 0 is root".into()));
    }
    if let Some(n) = name_of(passwd, uid) {
        return Err(refuse(format!(
            "uid {uid} is the account {n} in {}; a VM must not run as a host account",
            passwd.display()
        )));
    }
    if let Some(n) = name_of(group, gid) {
        return Err(refuse(format!(
            "gid {gid} is the group {n} in {}; a VM must not run as a host group",
            group.display()
        )));
    }
    Ok(())
}

/// The user namespace svirt runs in, from a `uid_map` file: `Err(map)` unless it is the
/// initial one (a single line mapping every id to itself).
pub fn check_initial_userns(uid_map: &Path) -> Result<(), DacError> {
    let Ok(text) = std::fs::read_to_string(uid_map) else {
        // No procfs to tell: assume the initial namespace (the syscalls will say otherwise).
        return Ok(());
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields == ["0", "0", "4294967295"] {
        return Ok(());
    }
    Err(DacError::UserNamespace {
        map: format!("uid_map: {}", fields.join(" ")),
    })
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
    fn ranges_holding_root_nobody_or_minus_one_or_not_fitting_are_refused_by_cause() {
        for (range, cause) in [
            ("0-100", "must not include 0 (root)"),
            ("65000-65600", "must not include 65534 (nobody)"),
            ("4294967294-4294967295", "HIGH does not fit"),
            ("4294967290-4294967296", "HIGH does not fit"),
            ("99999999999-99999999999", "LOW does not fit"),
            ("100-100", "need LOW < HIGH"),
        ] {
            let e = IdRange::parse(range).unwrap_err().to_string();
            assert!(e.contains(cause), "{range}: {e}");
        }
        assert!(IdRange::parse("4294967000-4294967294").is_ok());
    }

    #[test]
    fn the_shared_group_must_lie_above_the_system_range() {
        let dir = tempfile::tempdir().unwrap();
        let defs = dir.path().join("login.defs");
        assert_eq!(sys_gid_max(&defs), 999, "no file: the shadow default");
        std::fs::write(&defs, "# x\nGID_MIN 2000\n").unwrap();
        assert_eq!(sys_gid_max(&defs), 1999);
        std::fs::write(&defs, "GID_MIN 2000\nSYS_GID_MAX\t499\n").unwrap();
        assert_eq!(sys_gid_max(&defs), 499);
        // A commented key, a value that is no number, and a later line of a key all lose to
        // the first line of the key that holds a number.
        std::fs::write(
            &defs,
            "#SYS_GID_MAX 10
  SYS_GID_MAX x
GID_MIN 3000
  SYS_GID_MAX 700
SYS_GID_MAX 800
",
        )
        .unwrap();
        assert_eq!(sys_gid_max(&defs), 700);
        std::fs::write(
            &defs,
            "GID_MIN
GID_MIN y
	GID_MIN 5000
GID_MIN 6000
",
        )
        .unwrap();
        assert_eq!(sys_gid_max(&defs), 4999);
        for (gid, cause) in [
            (0, "root's group"),
            (6, "system group range 0-999"),
            (999, "system group range 0-999"),
            (65534, "nobody"),
            (u32::MAX, "nobody"),
        ] {
            let e = check_shared_group(gid, 999).unwrap_err().to_string();
            assert!(e.contains(cause), "{gid}: {e}");
        }
        check_shared_group(1000, 999).unwrap();
        check_shared_group(64999, 999).unwrap();
    }

    #[test]
    fn static_labels_of_root_or_host_accounts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        let g = dir.path().join("group");
        std::fs::write(&p, "alice:x:1000:1000::/home/alice:/bin/sh\n").unwrap();
        std::fs::write(&g, "alice:x:1000:\nkvm:x:992:\n").unwrap();
        for (label, ids, cause) in [
            ("+0:+0", (0, 0), "root"),
            ("+64001:+0", (64001, 0), "root"),
            ("+1000:+64001", (1000, 64001), "account alice"),
            ("+64001:+992", (64001, 992), "group kvm"),
        ] {
            let e = check_static_owner(label, ids, &p, &g)
                .unwrap_err()
                .to_string();
            assert!(e.contains(cause), "{label}: {e}");
        }
        check_static_owner("+64001:+64001", (64001, 64001), &p, &g).unwrap();
    }

    #[test]
    fn only_the_initial_user_namespace_map_passes() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("uid_map");
        std::fs::write(&m, "         0          0 4294967295\n").unwrap();
        check_initial_userns(&m).unwrap();
        std::fs::write(&m, "         0          0          1\n").unwrap();
        let e = check_initial_userns(&m).unwrap_err().to_string();
        assert!(e.contains("needs the initial user namespace"), "{e}");
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
