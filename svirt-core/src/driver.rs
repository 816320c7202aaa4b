//! The [`SecurityDriver`] trait: one object-safe interface over the whole VM lifecycle, modeled on
//! libvirt's security driver table.
//!
//! Mandatory (no default): [`SecurityDriver::model`], [`SecurityDriver::probe`],
//! [`SecurityDriver::generate_label`], [`SecurityDriver::set_all`] and
//! [`SecurityDriver::restore_all`]. Everything else defaults to doing nothing, which is right for a
//! driver that changes nothing on disk (Landlock) or keeps no label state (DAC reservation).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::os::fd::RawFd;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Access, Domain, LabelType, Resource, ResourceKind, SecLabel};
use crate::error::Result;

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub available: bool,
    /// Why it is (not) available, and details such as an ABI version.
    pub detail: String,
}

/// The label a driver generated for a domain; kept per driver model in the domain's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub model: String,
    #[serde(rename = "type")]
    pub kind: LabelType,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagelabel: Option<String>,
    pub relabel: bool,
    /// Driver-specific facts (an ABI version, a rule list, supplementary groups).
    #[serde(flatten, default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What a driver did to one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub path: PathBuf,
    pub model: String,
    pub label: String,
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The path as the domain gave it, when it resolved to another (`path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<PathBuf>,
    /// Parts of a directory share left alone (mount points inside it), with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
}

/// A path inside a resource that was deliberately left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    pub path: PathBuf,
    pub reason: String,
}

/// Everything a driver needs about the domain it works on.
#[derive(Clone, Copy, Debug)]
pub struct DomainCtx<'a> {
    pub domain: &'a Domain,
    /// The domain-level seclabel for this driver (explicit or implicit).
    pub seclabel: &'a SecLabel,
    /// The label this driver generated.
    pub label: &'a LabelRecord,
}

/// Options for the exec hooks.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// File descriptors the manager passes to the VMM on purpose; others are closed at exec.
    pub keep_fds: Vec<RawFd>,
}

/// When an exec hook runs, relative to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExecPhase {
    /// Set labels that need the manager's identity (SELinux exec context).
    Label,
    /// Change identity (groups, gid, uid, capabilities).
    Identity,
    /// Confine what the process can reach (Landlock), last.
    Confine,
}

/// Work done in the forked child just before exec. Everything is prepared before the fork:
/// [`ExecHook::apply`] must only make async-signal-safe syscalls (no allocation, no locks).
pub trait ExecHook: Send + Sync + Debug {
    /// Which phase the hook belongs to.
    fn phase(&self) -> ExecPhase;
    /// Apply it in the child; returns the errno of the first failing call.
    fn apply(&self) -> std::result::Result<(), i32>;
}

/// A security driver. See the module docs for which methods are mandatory.
#[async_trait]
pub trait SecurityDriver: Send + Sync + Debug {
    /// The model name domains refer to (`selinux`, `dac`, `landlock`, `none`).
    fn model(&self) -> &str;

    /// Whether the driver can work on this host.
    async fn probe(&self) -> Probe;

    /// Check a domain's seclabel and resources against this driver. Changes nothing.
    async fn verify(&self, _domain: &Domain, _seclabel: &SecLabel) -> Result<()> {
        Ok(())
    }

    /// Generate (and reserve) the domain's label at start.
    async fn generate_label(&self, domain: &Domain, seclabel: &SecLabel) -> Result<LabelRecord>;

    /// Mark a running domain's label as in use again, after a manager restart. `pid` is the
    /// running VMM, whose live label the driver may read.
    async fn reserve_label(&self, _ctx: DomainCtx<'_>, _pid: Option<u32>) -> Result<()> {
        Ok(())
    }

    /// Make the label store agree with the domains that are really running (`live`): drop
    /// reservations nobody holds any more (after crashes), keep those of running domains.
    async fn reconcile(&self, _live: &[(Domain, LabelRecord)]) -> Result<()> {
        Ok(())
    }

    /// Release the label at stop.
    async fn release_label(&self, _ctx: DomainCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// Label every resource of the domain. On failure the driver undoes what it did.
    async fn set_all(&self, ctx: DomainCtx<'_>) -> Result<Vec<ResourceReport>>;

    /// Restore every resource of the domain. Best effort: keeps going and reports every failure.
    async fn restore_all(&self, ctx: DomainCtx<'_>) -> Result<()>;

    /// Label one resource (hotplug, block jobs, an ad-hoc path).
    async fn set_resource(&self, _ctx: DomainCtx<'_>, res: &Resource) -> Result<ResourceReport> {
        Ok(ResourceReport {
            path: res.path.clone(),
            model: self.model().to_owned(),
            label: String::new(),
            skipped: true,
            reason: Some("nothing to do for this driver".into()),
            given: None,
            excluded: Vec::new(),
        })
    }

    /// Restore one resource.
    async fn restore_resource(&self, _ctx: DomainCtx<'_>, _res: &Resource) -> Result<()> {
        Ok(())
    }

    /// Prepare the hook that labels the VMM in the forked child before exec.
    fn prepare_exec(
        &self,
        _ctx: DomainCtx<'_>,
        _opts: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        Ok(None)
    }

    /// Read the label of a running process, as this driver sees it.
    async fn process_label(&self, _pid: u32) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The named per-resource calls of libvirt's table, each a [`SecurityDriver::set_resource`] or
/// [`SecurityDriver::restore_resource`] with the right resource kind.
#[async_trait]
pub trait ResourceCalls {
    /// Label one disk image (hotplug, block copy).
    async fn set_image(
        &self,
        ctx: DomainCtx<'_>,
        path: PathBuf,
        access: Access,
    ) -> Result<ResourceReport>;
    /// Restore one disk image.
    async fn restore_image(&self, ctx: DomainCtx<'_>, path: PathBuf, access: Access) -> Result<()>;
    /// Label an arbitrary path read-write or read-only.
    async fn set_path(
        &self,
        ctx: DomainCtx<'_>,
        path: PathBuf,
        readonly: bool,
    ) -> Result<ResourceReport>;
    /// Label a host device node.
    async fn set_hostdev(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport>;
    /// Label a character device or socket.
    async fn set_chardev(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport>;
    /// Label TPM emulator state.
    async fn set_tpm(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport>;
    /// Label a saved-state (managed save) file, read-only content.
    async fn set_saved_state(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport>;
}

#[async_trait]
impl<T: SecurityDriver + ?Sized> ResourceCalls for T {
    async fn set_image(
        &self,
        ctx: DomainCtx<'_>,
        path: PathBuf,
        access: Access,
    ) -> Result<ResourceReport> {
        self.set_resource(ctx, &Resource::new(path, ResourceKind::Disk, access))
            .await
    }
    async fn restore_image(&self, ctx: DomainCtx<'_>, path: PathBuf, access: Access) -> Result<()> {
        self.restore_resource(ctx, &Resource::new(path, ResourceKind::Disk, access))
            .await
    }
    async fn set_path(
        &self,
        ctx: DomainCtx<'_>,
        path: PathBuf,
        readonly: bool,
    ) -> Result<ResourceReport> {
        let access = Access::from_readonly(readonly);
        self.set_resource(ctx, &Resource::new(path, ResourceKind::Path, access))
            .await
    }
    async fn set_hostdev(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport> {
        self.set_resource(
            ctx,
            &Resource::new(path, ResourceKind::Hostdev, Access::Private),
        )
        .await
    }
    async fn set_chardev(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport> {
        self.set_resource(
            ctx,
            &Resource::new(path, ResourceKind::Chardev, Access::Private),
        )
        .await
    }
    async fn set_tpm(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport> {
        self.set_resource(
            ctx,
            &Resource::new(path, ResourceKind::Tpm, Access::Private),
        )
        .await
    }
    async fn set_saved_state(&self, ctx: DomainCtx<'_>, path: PathBuf) -> Result<ResourceReport> {
        self.set_resource(
            ctx,
            &Resource::new(path, ResourceKind::SavedState, Access::ReadOnly),
        )
        .await
    }
}
