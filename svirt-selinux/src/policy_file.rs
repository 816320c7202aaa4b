//! Checking labels against a binary policy file through libsepol, for offline mode (image
//! builders, hosts where SELinux is installed but not running).

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Whether `context` is valid in `policy`; `None` when the policy cannot be read.
pub fn check(policy: &Path, context: &str) -> Option<bool> {
    let c = CString::new(context).ok()?;
    match crate::sys::sepol_check(policy, &c) {
        Ok(valid) => Some(valid),
        Err(e) => {
            tracing::warn!(policy = %policy.display(), error = %e, "cannot check labels against the policy file");
            None
        }
    }
}

/// The newest binary policy under `policy_root/policy/` (`policy.33` and the like).
pub fn installed(policy_root: &Path) -> Option<PathBuf> {
    let dir = policy_root.join("policy");
    std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let v: u32 = name.strip_prefix("policy.")?.parse().ok()?;
            Some((v, e.path()))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny MLS policy with svirt_t, svirt_image_t and categories c0..c7, built by checkpolicy.
    fn tiny_policy(dir: &Path) -> Option<PathBuf> {
        let conf = dir.join("policy.conf");
        std::fs::write(&conf, include_str!("../tests/data/tiny-policy.conf")).ok()?;
        let out = dir.join("policy.33");
        let ok = std::process::Command::new("checkpolicy")
            .args(["-M", "-c", "33", "-o"])
            .arg(&out)
            .arg(&conf)
            .output()
            .ok()?
            .status
            .success();
        ok.then_some(out)
    }

    #[test]
    #[allow(clippy::print_stderr)] // the visible skip line, when checkpolicy is missing
    fn labels_are_checked_against_a_real_binary_policy() {
        let dir = tempfile::tempdir().unwrap();
        let Some(policy) = tiny_policy(dir.path()) else {
            assert!(
                std::env::var_os("SVIRT_REQUIRE_ALL").is_none(),
                "checkpolicy is needed to build the test policy"
            );
            eprintln!("SKIPPED labels_are_checked_against_a_real_binary_policy: checkpolicy is not installed");
            return;
        };
        assert_eq!(
            check(&policy, "system_u:system_r:svirt_t:s0:c1,c2"),
            Some(true)
        );
        assert_eq!(
            check(&policy, "system_u:system_r:svirt_t:s1:c0.c7"),
            Some(true)
        );
        assert_eq!(
            check(&policy, "system_u:system_r:nosuch_t:s0:c1,c2"),
            Some(false),
            "undefined type"
        );
        assert_eq!(
            check(&policy, "system_u:system_r:svirt_t:s0:c9"),
            Some(false),
            "undefined category"
        );
        assert_eq!(check(&policy, "nonsense"), Some(false));
        assert_eq!(
            check(
                &dir.path().join("missing.33"),
                "system_u:system_r:svirt_t:s0"
            ),
            None
        );
        assert_eq!(installed(dir.path().parent().unwrap()), None);
        std::fs::create_dir_all(dir.path().join("root/policy")).unwrap();
        std::fs::copy(&policy, dir.path().join("root/policy/policy.33")).unwrap();
        assert_eq!(
            installed(&dir.path().join("root")),
            Some(dir.path().join("root/policy/policy.33"))
        );
    }
}
