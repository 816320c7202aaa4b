//! The domain (VM) model, read from svirt's TOML or libvirt's domain XML, and the list of
//! resources a domain uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod name;
mod validate;
mod xml;

pub use name::validate_name;

/// A label type, as libvirt's `<seclabel type=...>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    Dynamic,
    Static,
    None,
}

impl LabelType {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelType::Dynamic => "dynamic",
            LabelType::Static => "static",
            LabelType::None => "none",
        }
    }
}

/// A domain-level security label for one model (`[[seclabel]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecLabel {
    /// The driver model (`selinux`, `dac`, `landlock`, `none`). Empty means the primary driver.
    #[serde(default)]
    pub model: String,
    /// dynamic, static or none; a baselabel alone implies dynamic.
    #[serde(rename = "type", default)]
    pub kind: Option<LabelType>,
    /// Whether resources are relabeled; defaults to yes for dynamic, no otherwise.
    #[serde(default)]
    pub relabel: Option<bool>,
    /// The full label (static only).
    #[serde(default)]
    pub label: Option<String>,
    /// A base label whose type a dynamic label uses.
    #[serde(default)]
    pub baselabel: Option<String>,
    /// The image label (static with relabel only).
    #[serde(default)]
    pub imagelabel: Option<String>,
    /// Declares a static label shared with other domains on purpose.
    #[serde(default)]
    pub shared: bool,
}

impl SecLabel {
    /// The effective type: explicit, or dynamic when only a baselabel is given, else dynamic.
    pub fn kind(&self) -> LabelType {
        self.kind.unwrap_or(if self.label.is_some() {
            LabelType::Static
        } else {
            LabelType::Dynamic
        })
    }

    /// The effective relabel flag (libvirt's defaults).
    pub fn relabel(&self) -> bool {
        self.relabel.unwrap_or(self.kind() == LabelType::Dynamic)
    }

    /// The implicit label of a default-confined domain for `model`.
    pub fn implicit(model: &str) -> Self {
        SecLabel {
            model: model.to_owned(),
            kind: Some(LabelType::Dynamic),
            relabel: Some(true),
            ..SecLabel::default()
        }
    }
}

/// A per-device override (`[[disk.seclabel]]`): relabel off, or a given label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLabel {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub relabel: Option<bool>,
    #[serde(default)]
    pub label: Option<String>,
}

/// A disk image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub shareable: bool,
    /// Lower layers of the backing chain, top first.
    #[serde(default)]
    pub backing: Vec<PathBuf>,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
}

impl Disk {
    /// A disk used with `access`, without backing layers or overrides.
    pub fn new(path: impl Into<PathBuf>, access: Access) -> Self {
        Disk {
            path: path.into(),
            readonly: access == Access::ReadOnly,
            shareable: access == Access::Shared,
            backing: Vec::new(),
            seclabels: Vec::new(),
        }
    }

    /// How the disk is used: read-only wins over shareable.
    pub fn access(&self) -> Access {
        Access::from_flags(self.readonly, self.shareable)
    }
}

/// A directory shared with the guest, labeled recursively.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
}

/// A character device, pipe, file or unix socket the VMM opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chardev {
    pub path: PathBuf,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
}

/// A host device node passed to the guest (`/dev/vfio/N`, a block or char device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostdev {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
}

/// TPM emulator state (a directory) or a passthrough TPM device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpm {
    pub path: PathBuf,
}

/// Network access a domain declares (Landlock enforces it; others ignore it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub tcp_connect: Vec<u16>,
    #[serde(default)]
    pub tcp_bind: Vec<u16>,
}

/// A domain: the VM and every resource its VMM process may touch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub dtb: Option<PathBuf>,
    /// Firmware and other read-only boot files.
    #[serde(default)]
    pub firmware: Vec<PathBuf>,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<SecLabel>,
    #[serde(default, rename = "disk")]
    pub disks: Vec<Disk>,
    #[serde(default, rename = "filesystem")]
    pub filesystems: Vec<Filesystem>,
    #[serde(default, rename = "chardev")]
    pub chardevs: Vec<Chardev>,
    #[serde(default, rename = "hostdev")]
    pub hostdevs: Vec<Hostdev>,
    #[serde(default, rename = "tpm")]
    pub tpms: Vec<Tpm>,
    #[serde(default)]
    pub network: Network,
}

/// How a resource is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read-write, this domain only.
    Private,
    /// Read-write, shared with other domains on purpose.
    Shared,
    /// Read-only content.
    ReadOnly,
}

impl Access {
    /// From libvirt's flags: read-only wins over shareable; neither is private.
    pub fn from_flags(readonly: bool, shareable: bool) -> Self {
        if readonly {
            Access::ReadOnly
        } else if shareable {
            Access::Shared
        } else {
            Access::Private
        }
    }

    /// Read-only content, or a private read-write resource.
    pub fn from_readonly(readonly: bool) -> Self {
        Self::from_flags(readonly, false)
    }
}

/// What a resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Disk,
    Backing,
    Kernel,
    Initrd,
    Dtb,
    Firmware,
    Filesystem,
    Chardev,
    Hostdev,
    Tpm,
    SavedState,
    Path,
}

/// One path a domain uses, with how it is used and its per-device label overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub path: PathBuf,
    pub kind: ResourceKind,
    pub access: Access,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<DeviceLabel>,
}

impl Resource {
    /// A resource without overrides.
    pub fn new(path: impl Into<PathBuf>, kind: ResourceKind, access: Access) -> Self {
        Resource {
            path: path.into(),
            kind,
            access,
            overrides: Vec::new(),
        }
    }

    /// The override for `model`, if any.
    pub fn override_for(&self, model: &str) -> Option<&DeviceLabel> {
        self.overrides
            .iter()
            .find(|o| o.model == model || o.model.is_empty())
    }

    /// True when the resource is a directory labeled recursively.
    pub fn is_tree(&self) -> bool {
        matches!(self.kind, ResourceKind::Filesystem | ResourceKind::Tpm)
    }
}

impl Domain {
    /// Parse a domain file by its extension: `.xml` as libvirt XML, anything else as TOML.
    /// `-` reads standard input, as XML when it starts with `<`. The file must be a regular
    /// file of at most [`crate::input::MAX_INPUT`] bytes; it is opened without blocking.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::input::read(path).map_err(|e| Error::DomainParse {
            source_name: path.display().to_string(),
            format: "file",
            reason: crate::display_chain(&e),
        })?;
        let name = path.display().to_string();
        let xml = if path.as_os_str() == crate::input::STDIN {
            text.trim_start().starts_with('<')
        } else {
            path.extension().is_some_and(|e| e == "xml")
        };
        if xml {
            Self::from_xml(&text, &name)
        } else {
            Self::from_toml(&text, &name)
        }
    }

    /// Parse svirt's TOML format and validate the result.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self> {
        let d: Domain = toml::from_str(text).map_err(|e| Error::DomainParse {
            source_name: source_name.to_owned(),
            format: "TOML",
            reason: e.message().to_owned(),
        })?;
        d.validate()?;
        Ok(d)
    }

    /// Parse libvirt domain XML and validate the result. Elements svirt does not use are ignored.
    pub fn from_xml(text: &str, source_name: &str) -> Result<Self> {
        let d = xml::parse(text, source_name)?;
        d.validate()?;
        Ok(d)
    }

    /// Check libvirt's seclabel rules, the name, and the paths.
    pub fn validate(&self) -> Result<()> {
        validate::validate(self)
    }

    /// The domain-level seclabel for `model`.
    pub fn seclabel(&self, model: &str) -> Option<&SecLabel> {
        self.seclabels.iter().find(|s| s.model == model)
    }

    /// Every path the domain uses, in the order they are labeled.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        for (kind, p) in [
            (ResourceKind::Kernel, &self.kernel),
            (ResourceKind::Initrd, &self.initrd),
            (ResourceKind::Dtb, &self.dtb),
        ] {
            if let Some(p) = p {
                out.push(Resource::new(p, kind, Access::ReadOnly));
            }
        }
        for p in &self.firmware {
            out.push(Resource::new(p, ResourceKind::Firmware, Access::ReadOnly));
        }
        for d in &self.disks {
            out.push(Resource {
                overrides: d.seclabels.clone(),
                ..Resource::new(&d.path, ResourceKind::Disk, d.access())
            });
            for b in &d.backing {
                out.push(Resource::new(b, ResourceKind::Backing, Access::ReadOnly));
            }
        }
        for f in &self.filesystems {
            out.push(Resource {
                overrides: f.seclabels.clone(),
                ..Resource::new(
                    &f.path,
                    ResourceKind::Filesystem,
                    Access::from_readonly(f.readonly),
                )
            });
        }
        for c in &self.chardevs {
            out.push(Resource {
                overrides: c.seclabels.clone(),
                ..Resource::new(&c.path, ResourceKind::Chardev, Access::Private)
            });
        }
        for h in &self.hostdevs {
            out.push(Resource {
                overrides: h.seclabels.clone(),
                ..Resource::new(
                    &h.path,
                    ResourceKind::Hostdev,
                    Access::from_readonly(h.readonly),
                )
            });
        }
        for t in &self.tpms {
            out.push(Resource::new(&t.path, ResourceKind::Tpm, Access::Private));
        }
        out
    }
}
