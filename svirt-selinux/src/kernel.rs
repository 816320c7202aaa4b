//! The libselinux calls the driver makes, behind a small seam so tests can pretend.

use std::fmt::Debug;

/// What the driver asks the running kernel through libselinux.
pub trait Kernel: Send + Sync + Debug {
    /// Whether SELinux runs (enforcing or permissive), and whether it is enforcing.
    fn mode(&self) -> Option<bool>;
    /// The calling process's context.
    fn current_context(&self) -> std::io::Result<String>;
    /// `security_check_context`: `None` when no policy is loaded.
    fn check_context(&self, ctx: &str) -> Option<bool>;
}

/// The real libselinux.
#[derive(Debug, Default)]
pub struct LibSelinux;

impl Kernel for LibSelinux {
    fn mode(&self) -> Option<bool> {
        if selinux::kernel_support() == selinux::KernelSupport::Unsupported {
            return None;
        }
        match selinux::current_mode() {
            selinux::SELinuxMode::NotRunning => None,
            selinux::SELinuxMode::Permissive => Some(false),
            selinux::SELinuxMode::Enforcing => Some(true),
            _ => Some(true),
        }
    }

    fn current_context(&self) -> std::io::Result<String> {
        let c = selinux::SecurityContext::current(true)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(String::from_utf8_lossy(c.as_bytes())
            .trim_end_matches('\0')
            .to_owned())
    }

    fn check_context(&self, ctx: &str) -> Option<bool> {
        let c = std::ffi::CString::new(ctx).ok()?;
        let checked = selinux::SecurityContext::from_c_str(&c, true).check();
        checked
    }
}
