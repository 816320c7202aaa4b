//! The contexts a driver works with: the policy's `virtual_domain_context` (line 1 the VM
//! process, line 2 the TCG variant) and `virtual_image_context` (line 1 images, line 2 read-only
//! content), as libvirt reads them, each overridable in the configuration.

use std::path::Path;

use svirt_core::context::{Level, MlsRange, SecurityContext};

use crate::error::SelinuxError;

/// The policy defaults used in offline mode when no contexts files exist.
pub const DEFAULT_DOMAIN: &str = "system_u:system_r:svirt_t:s0";
pub const DEFAULT_TCG: &str = "system_u:system_r:svirt_tcg_t:s0";
pub const DEFAULT_IMAGE: &str = "system_u:object_r:svirt_image_t:s0";
pub const DEFAULT_CONTENT: &str = "system_u:object_r:virt_content_t:s0";
pub const DEFAULT_MANAGER: &str = "system_u:system_r:virtd_t:s0-s0:c0.c1023";

/// Every context the driver derives labels from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contexts {
    pub manager: SecurityContext,
    pub domain: SecurityContext,
    pub tcg: Option<SecurityContext>,
    pub image: SecurityContext,
    pub content: SecurityContext,
}

/// Line `n` (0-based) of a contexts file, parsed.
pub fn read_line(path: &Path, n: usize) -> Option<SecurityContext> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .nth(n)?
        .parse()
        .ok()
}

impl Contexts {
    /// The process label of a dynamic VM (libvirt's `virSecuritySELinuxGenNewContext` for a
    /// process): user and role from the manager, type from `base`, the range the allocated level.
    pub fn process_label(&self, base: &SecurityContext, level: &Level) -> SecurityContext {
        SecurityContext {
            user: self.manager.user.clone(),
            role: self.manager.role.clone(),
            type_: base.type_.clone(),
            range: Some(MlsRange::single(level.clone())),
        }
    }

    /// The image label for a range (`virSecuritySELinuxGenNewContext` for an object): the
    /// manager's user, the image context's role and type, and `range`.
    pub fn image_label(&self, range: &MlsRange) -> SecurityContext {
        SecurityContext {
            user: self.manager.user.clone(),
            ..self.image.with_range(range.clone())
        }
    }

    /// The image context with the manager's user, for labels generated from a given range.
    pub fn image_for_manager(&self) -> SecurityContext {
        SecurityContext {
            user: self.manager.user.clone(),
            ..self.image.clone()
        }
    }

    /// The base of a dynamic process label when no `<baselabel>` is given
    /// (`virSecuritySELinuxGenLabel`): line 2 of `virtual_domain_context` for a TCG
    /// (`type='qemu'`) domain when the policy has one, else line 1.
    pub fn dynamic_base(&self, tcg: bool) -> &SecurityContext {
        match (&self.tcg, tcg) {
            (Some(t), true) => t,
            (None, true) => {
                tracing::warn!(
                    "no TCG context in virtual_domain_context; a TCG domain runs as {} (it may need the virt_use_execmem boolean)",
                    self.domain
                );
                &self.domain
            }
            _ => &self.domain,
        }
    }

    /// Check that the image and content contexts parse (they always do here) — kept for errors.
    pub fn missing(what: &'static str, path: &Path, key: &'static str) -> SelinuxError {
        SelinuxError::ContextsFile {
            what,
            path: path.to_owned(),
            key,
        }
    }
}
