//! Access decisions from a binary policy file through libsepol (`sepol_compute_av_reason`): the
//! same computation the kernel makes (type enforcement, RBAC, constraints including MLS/MCS,
//! type bounds), on any host, with or without SELinux running.
//!
//! libsepol keeps one policy database per process; every call takes a process-wide lock and
//! loads the policy file first when another one is loaded.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::SelinuxError;

/// Why libsepol denied part of a request (`SEPOL_COMPUTEAV_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyReason {
    /// No type-enforcement `allow` rule grants it.
    TypeEnforcement,
    /// A constraint forbids it (the MLS/MCS `mlsconstrain` rules are constraints).
    Constraint,
    /// Role-based access control.
    Rbac,
    /// A `typebounds` rule.
    Bounds,
}

impl DenyReason {
    fn from_bits(bits: u32) -> Vec<DenyReason> {
        [
            (1, DenyReason::TypeEnforcement),
            (2, DenyReason::Constraint),
            (4, DenyReason::Rbac),
            (8, DenyReason::Bounds),
        ]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, r)| r)
        .collect()
    }

    /// A short phrase for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::TypeEnforcement => "no TE allow rule",
            DenyReason::Constraint => "constraint (MLS/MCS)",
            DenyReason::Rbac => "RBAC",
            DenyReason::Bounds => "type bounds",
        }
    }
}

/// The policy's answer for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessDecision {
    /// Every requested permission the policy defines is granted.
    pub allowed: bool,
    /// The requested permissions that were denied.
    pub denied: Vec<String>,
    /// Why they were denied.
    pub reasons: Vec<DenyReason>,
    /// Requested permissions this policy does not define for the class (not checked, as the
    /// kernel does not check them either).
    pub undefined: Vec<String>,
}

/// A binary policy file (`policy.33`, `/sys/fs/selinux/policy`) to decide against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    path: PathBuf,
}

fn cstr(s: &str) -> Result<CString, SelinuxError> {
    CString::new(s).map_err(|_| SelinuxError::Nul {
        label: s.to_owned(),
    })
}

impl PolicyFile {
    /// Load the policy at `path` (checked now, so a bad file is refused before any decision).
    pub fn open(path: &Path) -> Result<Self, SelinuxError> {
        crate::sys::sepol(path).map_err(|source| SelinuxError::PolicyLoad {
            path: path.to_owned(),
            source,
        })?;
        Ok(PolicyFile {
            path: path.to_owned(),
        })
    }

    /// The policy file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<crate::sys::Sepol<'static>, SelinuxError> {
        crate::sys::sepol(&self.path).map_err(|source| SelinuxError::PolicyLoad {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether `context` is valid in this policy.
    pub fn valid(&self, context: &str) -> Result<bool, SelinuxError> {
        let c = cstr(context)?;
        Ok(self.lock()?.sid(&c).is_some())
    }

    /// May a process labeled `source` use `perms` of class `class` on an object labeled
    /// `target`?
    pub fn decide(
        &self,
        source: &str,
        target: &str,
        class: &str,
        perms: &[&str],
    ) -> Result<AccessDecision, SelinuxError> {
        let (s, t, c) = (cstr(source)?, cstr(target)?, cstr(class)?);
        let sepol = self.lock()?;
        let invalid = |context: &str| SelinuxError::NotInPolicy {
            what: "context",
            name: context.to_owned(),
            policy: self.path.clone(),
        };
        let ssid = sepol.sid(&s).ok_or_else(|| invalid(source))?;
        let tsid = sepol.sid(&t).ok_or_else(|| invalid(target))?;
        let tclass = sepol.class(&c).ok_or_else(|| SelinuxError::NotInPolicy {
            what: "class",
            name: class.to_owned(),
            policy: self.path.clone(),
        })?;
        let mut requested = 0u32;
        let mut bits = Vec::new();
        let mut undefined = Vec::new();
        for p in perms {
            match sepol.perm(tclass, &cstr(p)?) {
                Some(av) => {
                    requested |= av;
                    bits.push((*p, av));
                }
                None => undefined.push((*p).to_owned()),
            }
        }
        if requested == 0 {
            return Ok(AccessDecision {
                allowed: true,
                denied: Vec::new(),
                reasons: Vec::new(),
                undefined,
            });
        }
        let (allowed, reason) =
            sepol
                .compute_av(ssid, tsid, tclass, requested)
                .ok_or_else(|| SelinuxError::Compute {
                    source_context: source.to_owned(),
                    target: target.to_owned(),
                    class: class.to_owned(),
                })?;
        let denied: Vec<String> = bits
            .iter()
            .filter(|(_, av)| allowed & av == 0)
            .map(|(p, _)| (*p).to_owned())
            .collect();
        Ok(AccessDecision {
            allowed: denied.is_empty(),
            reasons: if denied.is_empty() {
                Vec::new()
            } else {
                DenyReason::from_bits(reason)
            },
            denied,
            undefined,
        })
    }
}

/// The policy `svirt audit` decides against by default: the loaded one when SELinux runs
/// (`selinuxfs/policy`), else the newest `policy.NN` of the type named in
/// `etc_selinux/config` (`SELINUXTYPE`, default `default`).
pub fn default_policy(selinuxfs: &Path, etc_selinux: &Path) -> Option<PathBuf> {
    let loaded = selinuxfs.join("policy");
    if loaded.exists() {
        return Some(loaded);
    }
    let kind = std::fs::read_to_string(etc_selinux.join("config"))
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("SELINUXTYPE="))
                .map(|v| v.trim().to_owned())
                .next_back()
        })
        .filter(|v| !v.is_empty() && !v.contains('/'))
        .unwrap_or_else(|| "default".into());
    crate::policy_file::installed(&etc_selinux.join(kind))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small MLS policy with file classes, svirt_t, images, content and shadow_t, compiled
    /// by checkpolicy; `None` (after a visible skip) when checkpolicy is missing.
    #[allow(clippy::print_stderr)]
    pub(crate) fn mls_policy(dir: &Path, test: &str) -> Option<PathBuf> {
        let conf = dir.join("policy.conf");
        std::fs::write(&conf, include_str!("../tests/data/audit-policy.conf")).unwrap();
        let out = dir.join("policy.33");
        let run = std::process::Command::new("checkpolicy")
            .args(["-M", "-c", "33", "-o"])
            .arg(&out)
            .arg(&conf)
            .output();
        match run {
            Ok(o) if o.status.success() => Some(out),
            Ok(o) => panic!(
                "checkpolicy refused the test policy: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => {
                assert!(
                    std::env::var_os("SVIRT_REQUIRE_ALL").is_none(),
                    "{test}: checkpolicy is needed ({e})"
                );
                eprintln!("SKIPPED {test}: checkpolicy is not installed");
                None
            }
        }
    }

    const VM: &str = "system_u:system_r:svirt_t:s0:c1,c2";

    #[test]
    fn libsepol_allows_by_te_and_denies_by_te_and_by_mcs_constraint() {
        let dir = tempfile::tempdir().unwrap();
        let Some(p) = mls_policy(
            dir.path(),
            "libsepol_allows_by_te_and_denies_by_te_and_by_mcs_constraint",
        ) else {
            return;
        };
        let pol = PolicyFile::open(&p).unwrap();
        let own = pol
            .decide(
                VM,
                "system_u:object_r:svirt_image_t:s0:c1,c2",
                "file",
                &["read", "write", "open"],
            )
            .unwrap();
        assert!(own.allowed, "{own:?}");
        let shadow = pol
            .decide(
                VM,
                "system_u:object_r:shadow_t:s0",
                "file",
                &["read", "open"],
            )
            .unwrap();
        assert!(!shadow.allowed);
        assert_eq!(shadow.reasons, [DenyReason::TypeEnforcement]);
        assert_eq!(shadow.denied, ["read", "open"]);
        let other = pol
            .decide(
                VM,
                "system_u:object_r:svirt_image_t:s0:c3,c4",
                "file",
                &["read", "write", "open"],
            )
            .unwrap();
        assert!(!other.allowed);
        assert_eq!(other.reasons, [DenyReason::Constraint]);
        assert_eq!(other.denied, ["read", "write"], "open is not constrained");
        let content = pol
            .decide(
                VM,
                "system_u:object_r:virt_content_t:s0",
                "file",
                &["read", "write"],
            )
            .unwrap();
        assert_eq!(content.denied, ["write"]);
        assert_eq!(content.reasons, [DenyReason::TypeEnforcement]);
        let e = pol
            .decide(VM, "system_u:object_r:nosuch_t:s0", "file", &["read"])
            .unwrap_err();
        assert!(e.to_string().contains("nosuch_t"), "{e}");
        let e = pol
            .decide(VM, "system_u:object_r:shadow_t:s0", "no_class", &["read"])
            .unwrap_err();
        assert!(e.to_string().contains("no_class"), "{e}");
        let undefined = pol
            .decide(VM, "system_u:object_r:shadow_t:s0", "file", &["frobnicate"])
            .unwrap();
        assert_eq!(undefined.undefined, ["frobnicate"]);
        assert!(PolicyFile::open(&dir.path().join("missing.33")).is_err());
    }

    #[test]
    fn the_default_policy_is_the_loaded_one_else_the_configured_type() {
        let d = tempfile::tempdir().unwrap();
        let fs = d.path().join("selinuxfs");
        let etc = d.path().join("etc");
        std::fs::create_dir_all(etc.join("mls/policy")).unwrap();
        std::fs::create_dir_all(etc.join("default/policy")).unwrap();
        std::fs::write(etc.join("mls/policy/policy.33"), b"x").unwrap();
        std::fs::write(etc.join("default/policy/policy.31"), b"x").unwrap();
        assert_eq!(
            default_policy(&fs, &etc),
            Some(etc.join("default/policy/policy.31"))
        );
        std::fs::write(etc.join("config"), "SELINUX=enforcing\nSELINUXTYPE=mls\n").unwrap();
        assert_eq!(
            default_policy(&fs, &etc),
            Some(etc.join("mls/policy/policy.33"))
        );
        std::fs::create_dir_all(&fs).unwrap();
        std::fs::write(fs.join("policy"), b"x").unwrap();
        assert_eq!(default_policy(&fs, &etc), Some(fs.join("policy")));
    }
}
