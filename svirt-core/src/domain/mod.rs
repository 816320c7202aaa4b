//! The domain (VM) model, read from svirt's TOML or libvirt's domain XML, and the list of
//! resources a domain uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod derive;
mod devices;
mod name;
mod resources;
mod validate;
mod xml;
mod xml_seclabel;

pub use derive::HostPaths;
pub use devices::{ChardevKind, DiskSource, HostDevice, Layer, MemoryDevice, Tpm, VirtType};
pub use name::validate_name;
pub use resources::{Derive, DeviceChoice, Resource, ResourceKind};

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
    /// Lower layers of the backing chain, top first (paths, or tables with overrides).
    #[serde(default, deserialize_with = "devices::layers")]
    pub backing: Vec<Layer>,
    /// The top layer's `<source><seclabel>` elements; they govern the whole chain.
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
    /// The top layer's qcow2 external data file (`<dataStore>`).
    #[serde(default)]
    pub data_store: Option<PathBuf>,
    /// What kind of storage the top layer is.
    #[serde(default)]
    pub source: DiskSource,
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
            data_store: None,
            source: DiskSource::File,
        }
    }

    /// How the disk is used: shareable wins over read-only (libvirt's
    /// `virSecuritySELinuxSetImageLabelInternal` tests `shared` first).
    pub fn access(&self) -> Access {
        devices::disk_access(self.readonly, self.shareable)
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
    /// How the path is used (a file by default).
    #[serde(default)]
    pub kind: ChardevKind,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
}

/// A host device node passed to the guest by path (`/dev/vfio/N`, a block or char device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostdev {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    #[serde(default)]
    pub uuid: Option<String>,
    /// The hypervisor type (`kvm` unless given).
    #[serde(default, rename = "type")]
    pub virt_type: VirtType,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub dtb: Option<PathBuf>,
    /// Read-only boot files svirt labels as content (svirt's own list; not libvirt's loader).
    #[serde(default)]
    pub firmware: Vec<PathBuf>,
    /// The firmware `<loader>`: a system file, never relabeled.
    #[serde(default)]
    pub loader: Option<PathBuf>,
    /// The firmware's variable store `<nvram>`: a private image.
    #[serde(default)]
    pub nvram: Option<PathBuf>,
    /// The `<shim>` boot file: read-only content.
    #[serde(default)]
    pub shim: Option<PathBuf>,
    /// ACPI `<table>` files: read-only content.
    #[serde(default)]
    pub acpi_tables: Vec<PathBuf>,
    /// `<sysinfo type='fwcfg'>` entry files: read-only content.
    #[serde(default)]
    pub fwcfg_files: Vec<PathBuf>,
    /// The `<pstore>` backing file: a private image.
    #[serde(default)]
    pub pstore: Option<PathBuf>,
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
    /// Subsystem host devices whose nodes come from sysfs.
    #[serde(default, rename = "host_device")]
    pub host_devices: Vec<HostDevice>,
    /// `<input type='evdev'|'passthrough'>` device nodes.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// `<memory model='nvdimm'|'virtio-pmem'|'sgx-epc'>` backends.
    #[serde(default)]
    pub memory: Vec<MemoryDevice>,
    #[serde(default, rename = "tpm")]
    pub tpms: Vec<Tpm>,
    /// Smartcard certificate databases (directories, read-only content).
    #[serde(default)]
    pub smartcard_dbs: Vec<PathBuf>,
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
    /// From libvirt's flags: shareable wins over read-only (as in libvirt's
    /// `virSecuritySELinuxSetImageLabelInternal` and `virSecuritySELinuxSetSCSILabel`); neither
    /// is private.
    pub fn from_flags(readonly: bool, shareable: bool) -> Self {
        if shareable {
            Access::Shared
        } else if readonly {
            Access::ReadOnly
        } else {
            Access::Private
        }
    }

    /// Read-only content, or a private read-write resource.
    pub fn from_readonly(readonly: bool) -> Self {
        Self::from_flags(readonly, false)
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
}
