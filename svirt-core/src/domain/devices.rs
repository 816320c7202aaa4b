//! The devices of a domain, as svirt's TOML and libvirt's XML describe them. Each carries only
//! what labeling needs; [`super::Domain::resources`] turns them into the paths to label.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Access, DeviceLabel};

/// The hypervisor type of a domain (`<domain type=...>`). Only `qemu` (TCG) changes labeling:
/// libvirt's `virSecuritySELinuxGenLabel` then takes line 2 of `virtual_domain_context`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    #[default]
    Kvm,
    /// Pure emulation (TCG).
    Qemu,
    /// Any other hypervisor type libvirt knows (xen, lxc, hvf, ...).
    Other,
}

/// Where a disk's data lives (`<disk type=...>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum DiskSource {
    /// A local file or block device: `path`.
    #[default]
    File,
    /// A directory exposed as a disk (`type='dir'`): libvirt warns and never relabels it.
    Dir,
    /// Network storage (`type='network'`): not local, never labeled; `path` only names it.
    Network,
    /// A storage-pool volume (`type='volume'`): svirt does not resolve pools.
    Volume,
    /// An NVMe controller passed through (`type='nvme'`): its VFIO group node is labeled.
    Nvme { address: String },
}

/// One lower layer of a backing chain (`<backingStore>`), top first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The local file of the layer; `None` for a network layer.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The layer's own `<source><seclabel>` elements.
    #[serde(default, rename = "seclabel")]
    pub seclabels: Vec<DeviceLabel>,
    /// A qcow2 external data file (`<dataStore>`) of this layer.
    #[serde(default)]
    pub data_store: Option<PathBuf>,
}

/// A backing layer as TOML writes it: a bare path, or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum LayerToml {
    Path(PathBuf),
    Full {
        #[serde(default)]
        path: Option<PathBuf>,
        #[serde(default, rename = "seclabel")]
        seclabels: Vec<DeviceLabel>,
        #[serde(default)]
        data_store: Option<PathBuf>,
    },
}

/// Deserialize a backing chain written as paths or tables.
pub(super) fn layers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Layer>, D::Error> {
    let raw: Vec<LayerToml> = Vec::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|l| match l {
            LayerToml::Path(p) => Layer::local(p),
            LayerToml::Full {
                path,
                seclabels,
                data_store,
            } => Layer {
                path,
                seclabels,
                data_store,
            },
        })
        .collect())
}

impl Layer {
    /// A local layer without overrides.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Layer {
            path: Some(path.into()),
            seclabels: Vec::new(),
            data_store: None,
        }
    }
}

/// How a unix-socket or other character device is used (`<serial type=...>` and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChardevKind {
    /// A file, a device node, or anything that exists before the VMM starts.
    #[default]
    File,
    /// A named pipe: `PATH.in` and `PATH.out` when both exist, else `PATH`.
    Pipe,
    /// A unix socket the VMM connects to (`mode='connect'`): it must exist.
    UnixConnect,
    /// A unix socket the VMM listens on (`mode='bind'`): labeled only if it already exists.
    UnixListen,
}

/// A subsystem host device whose node is found through sysfs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum HostDevice {
    /// A PCI device assigned with VFIO: its IOMMU group node `/dev/vfio/N`.
    Pci { address: String },
    /// A USB device: `/dev/bus/usb/BBB/DDD`.
    Usb { bus: u32, device: u32 },
    /// A USB device named only by vendor and product: libvirt searches sysfs for it at start;
    /// svirt needs the address and leaves it alone.
    UsbByVendor { vendor: String, product: String },
    /// A SCSI device through its generic node `/dev/sgN`.
    Scsi {
        host: u32,
        bus: u32,
        target: u32,
        unit: u32,
        #[serde(default)]
        readonly: bool,
        #[serde(default)]
        shareable: bool,
    },
    /// A vhost-scsi target (`type='scsi_host'`): `/dev/vhost-scsi`.
    ScsiHost { wwpn: String },
    /// A mediated device: the VFIO group node of `/sys/bus/mdev/devices/UUID`.
    Mdev { uuid: String },
}

/// What the VMM's memory device maps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "model", deny_unknown_fields)]
pub enum MemoryDevice {
    /// An emulated NVDIMM backed by a file or device.
    Nvdimm { path: PathBuf },
    /// A virtio-pmem device backed by a file.
    VirtioPmem { path: PathBuf },
    /// SGX enclave page cache: the host's `/dev/sgx_vepc` and `/dev/sgx_provision`.
    SgxEpc,
}

/// A TPM backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpm {
    /// The emulator's state directory, or the passthrough device node. For an emulator without
    /// one, libvirt's default `<swtpm storage>/<uuid>/tpm2` (or `tpm1.2`) is used.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A host TPM passed through (`type='passthrough'`), rather than swtpm.
    #[serde(default)]
    pub passthrough: bool,
    /// The TPM version of an emulator (`2.0` or `1.2`).
    #[serde(default)]
    pub version: Option<String>,
}

/// A resource's default access, from libvirt's `<readonly/>` and `<shareable/>`.
pub(super) fn disk_access(readonly: bool, shareable: bool) -> Access {
    Access::from_flags(readonly, shareable)
}
