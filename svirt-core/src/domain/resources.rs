//! The resources of a domain: every path libvirt's `virSecuritySELinuxSetAllLabel` and
//! `virSecurityDACSetAllLabel` touch, in their order, each with how it is used, the device
//! seclabels that govern it, and whether it is left alone (and why).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Access, ChardevKind, DeviceLabel, DiskSource, Domain, HostDevice, MemoryDevice};

/// What a resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Disk,
    Backing,
    /// A qcow2 external data file (`<dataStore>`).
    DataStore,
    Kernel,
    Initrd,
    Dtb,
    Firmware,
    /// The firmware `<loader>`: never relabeled.
    Loader,
    Nvram,
    Shim,
    AcpiTable,
    /// A `<sysinfo type='fwcfg'>` entry file.
    Fwcfg,
    Pstore,
    Filesystem,
    Chardev,
    Hostdev,
    Input,
    Memory,
    /// TPM emulator state: a directory labeled with its entries.
    Tpm,
    /// A passed-through host TPM device.
    TpmDevice,
    /// The sysfs cancel file of a passed-through TPM.
    TpmCancel,
    TpmLog,
    TpmSocket,
    /// A smartcard certificate database (a directory).
    Smartcard,
    #[serde(rename = "savedstate")]
    SavedState,
    Path,
}

/// A resource whose path must be found on the host (through [`crate::host::Host`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "derive")]
pub enum Derive {
    /// The VFIO group node of a PCI device (sysfs `iommu_group`); also NVMe disks.
    PciGroup { address: String },
    /// The VFIO group node of a mediated device.
    MdevGroup { uuid: String },
    /// `/dev/bus/usb/BBB/DDD`.
    Usb { bus: u32, device: u32 },
    /// The SCSI generic node `/dev/sgN` of `host:bus:target:unit`.
    ScsiGeneric {
        host: u32,
        bus: u32,
        target: u32,
        unit: u32,
    },
    /// A node directly under the host's `/dev`.
    DevNode { name: String },
    /// An SGX node under `/dev` (the DAC driver leaves these alone).
    Sgx { name: String },
    /// The sysfs cancel file of a TPM device node.
    TpmCancel { device: PathBuf },
    /// swtpm's state directory, named by the domain's uuid.
    SwtpmState {
        uuid: Option<String>,
        version: Option<String>,
    },
    /// swtpm's log file, named by the domain's name.
    SwtpmLog { name: String },
    /// swtpm's control socket, named by the domain's short name.
    SwtpmSocket { name: String },
    /// The path, only if it already exists (a listen-mode socket the VMM creates).
    IfExists,
    /// A pipe: `PATH.in` and `PATH.out` when both exist, else `PATH`.
    Pipe,
}

/// One path a domain uses, with how it is used and the device labels that govern it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub path: PathBuf,
    pub kind: ResourceKind,
    pub access: Access,
    /// The resource's own `<seclabel>` elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<DeviceLabel>,
    /// The top disk's `<seclabel>` elements, for backing layers and data files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_overrides: Vec<DeviceLabel>,
    /// How the path is found on the host, when the domain does not give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive: Option<Derive>,
    /// Why no driver labels this resource, when none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
}

/// What the device seclabels say for one model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice<'a> {
    /// Leave the resource alone, for this reason.
    Skip(String),
    /// Use this label instead of the driver's default.
    Label(&'a str),
    /// The driver's default for the resource's access.
    Default,
}

impl Resource {
    /// A resource without overrides.
    pub fn new(path: impl Into<PathBuf>, kind: ResourceKind, access: Access) -> Self {
        Resource {
            path: path.into(),
            kind,
            access,
            overrides: Vec::new(),
            parent_overrides: Vec::new(),
            derive: None,
            skip: None,
        }
    }

    fn with_overrides(mut self, o: &[DeviceLabel]) -> Self {
        self.overrides = o.to_vec();
        self
    }

    fn with_parent(mut self, o: &[DeviceLabel]) -> Self {
        self.parent_overrides = o.to_vec();
        self
    }

    fn derived(mut self, d: Derive) -> Self {
        self.derive = Some(d);
        self
    }

    fn skipped(mut self, why: &str) -> Self {
        self.skip = Some(why.to_owned());
        self
    }

    /// The override for `model`, if any (a model-less one applies to every model).
    pub fn override_for(&self, model: &str) -> Option<&DeviceLabel> {
        find(&self.overrides, model)
    }

    /// libvirt's choice for one model (`virSecuritySELinuxSetImageLabelInternal`,
    /// `virSecurityDACSetImageLabelInternal`, and the chardev helpers): the resource's own
    /// seclabel when it turns relabeling off or names a label, else the top disk's when it does,
    /// else the driver's default. A seclabel that does neither changes nothing.
    pub fn choice(&self, model: &str) -> DeviceChoice<'_> {
        if let Some(why) = &self.skip {
            return DeviceChoice::Skip(why.clone());
        }
        for (labels, whose) in [
            (&self.overrides, "this device"),
            (&self.parent_overrides, "the top disk of this backing chain"),
        ] {
            if let Some(o) = find(labels, model) {
                if o.relabel == Some(false) {
                    return DeviceChoice::Skip(format!("relabel='no' on {whose}"));
                }
                if let Some(l) = &o.label {
                    return DeviceChoice::Label(l);
                }
            }
        }
        DeviceChoice::Default
    }

    /// True when the resource is a directory labeled recursively.
    pub fn is_tree(&self) -> bool {
        matches!(
            self.kind,
            ResourceKind::Filesystem | ResourceKind::Tpm | ResourceKind::Smartcard
        )
    }
}

fn find<'a>(labels: &'a [DeviceLabel], model: &str) -> Option<&'a DeviceLabel> {
    labels
        .iter()
        .find(|o| o.model == model)
        .or_else(|| labels.iter().find(|o| o.model.is_empty()))
}

/// Keep one entry per path: a later use of the same path replaces the earlier one in place, as
/// libvirt's later `setfilecon` overwrites an earlier one. Before resolution (`resolved` false)
/// derived placeholders are left as they are.
pub(super) fn dedupe(list: Vec<Resource>, resolved: bool) -> Vec<Resource> {
    let mut out: Vec<Resource> = Vec::with_capacity(list.len());
    for r in list {
        let keyed = |o: &Resource| resolved || o.derive.is_none();
        if keyed(&r) {
            if let Some(slot) = out.iter_mut().find(|o| keyed(o) && o.path == r.path) {
                *slot = r;
                continue;
            }
        }
        out.push(r);
    }
    out
}

const LOADER: &str = "the firmware loader is a system file; libvirt never relabels it";

impl Domain {
    /// Every path the domain uses, in libvirt's `SetAllLabel` order, followed by svirt's own
    /// (directory shares, firmware, capability host devices). Paths found through the host are
    /// given as [`Derive`] placeholders; [`Domain::resources_on`] resolves them.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        for d in &self.disks {
            self.disk_resources(d, &mut out);
        }
        for h in &self.host_devices {
            out.push(host_device(h));
        }
        for p in &self.inputs {
            out.push(Resource::new(p, ResourceKind::Input, Access::Private));
        }
        for m in &self.memory {
            match m {
                MemoryDevice::Nvdimm { path } | MemoryDevice::VirtioPmem { path } => {
                    out.push(Resource::new(path, ResourceKind::Memory, Access::Private));
                }
                MemoryDevice::SgxEpc => {
                    for name in ["sgx_vepc", "sgx_provision"] {
                        out.push(
                            Resource::new(
                                format!("/dev/{name}"),
                                ResourceKind::Memory,
                                Access::Private,
                            )
                            .derived(Derive::Sgx { name: name.into() }),
                        );
                    }
                }
            }
        }
        for t in &self.tpms {
            self.tpm_resources(t, &mut out);
        }
        for c in &self.chardevs {
            let r = Resource::new(&c.path, ResourceKind::Chardev, Access::Private)
                .with_overrides(&c.seclabels);
            out.push(match c.kind {
                ChardevKind::File | ChardevKind::UnixConnect => r,
                ChardevKind::UnixListen => r.derived(Derive::IfExists),
                ChardevKind::Pipe => r.derived(Derive::Pipe),
            });
        }
        for p in &self.smartcard_dbs {
            out.push(Resource::new(p, ResourceKind::Smartcard, Access::ReadOnly));
        }
        for p in &self.fwcfg_files {
            out.push(Resource::new(p, ResourceKind::Fwcfg, Access::ReadOnly));
        }
        if let Some(p) = &self.nvram {
            out.push(Resource::new(p, ResourceKind::Nvram, Access::Private));
        }
        for (kind, p) in [
            (ResourceKind::Kernel, &self.kernel),
            (ResourceKind::Initrd, &self.initrd),
            (ResourceKind::Dtb, &self.dtb),
        ] {
            if let Some(p) = p {
                out.push(Resource::new(p, kind, Access::ReadOnly));
            }
        }
        for p in &self.acpi_tables {
            out.push(Resource::new(p, ResourceKind::AcpiTable, Access::ReadOnly));
        }
        if let Some(p) = &self.shim {
            out.push(Resource::new(p, ResourceKind::Shim, Access::ReadOnly));
        }
        if let Some(p) = &self.pstore {
            out.push(Resource::new(p, ResourceKind::Pstore, Access::Private));
        }
        for p in &self.firmware {
            out.push(Resource::new(p, ResourceKind::Firmware, Access::ReadOnly));
        }
        if let Some(p) = &self.loader {
            out.push(Resource::new(p, ResourceKind::Loader, Access::ReadOnly).skipped(LOADER));
        }
        for f in &self.filesystems {
            out.push(
                Resource::new(
                    &f.path,
                    ResourceKind::Filesystem,
                    Access::from_readonly(f.readonly),
                )
                .with_overrides(&f.seclabels),
            );
        }
        for h in &self.hostdevs {
            out.push(
                Resource::new(
                    &h.path,
                    ResourceKind::Hostdev,
                    Access::from_readonly(h.readonly),
                )
                .with_overrides(&h.seclabels),
            );
        }
        dedupe(out, false)
    }

    /// A disk, its data file and its backing chain (libvirt's
    /// `virSecuritySELinuxSetImageLabelRelative`: every layer, each checked on its own for
    /// local storage, the top's seclabel governing the rest).
    fn disk_resources(&self, d: &super::Disk, out: &mut Vec<Resource>) {
        let top =
            Resource::new(&d.path, ResourceKind::Disk, d.access()).with_overrides(&d.seclabels);
        match &d.source {
            DiskSource::File => out.push(top),
            DiskSource::Nvme { address } => {
                out.push(top.derived(Derive::PciGroup {
                    address: address.clone(),
                }));
                return;
            }
            DiskSource::Dir => {
                // virSecuritySELinuxSetAllLabel: "Unable to relabel directory tree".
                out.push(top.skipped("a directory disk; libvirt does not relabel directory trees"));
                return;
            }
            DiskSource::Volume => {
                out.push(top.skipped(
                    "a storage-pool volume; svirt does not resolve pools (give the file instead)",
                ));
                return;
            }
            DiskSource::Network => {
                out.push(top.skipped("network storage is not local; nothing to label"));
            }
        }
        if let Some(ds) = &d.data_store {
            out.push(
                Resource::new(ds, ResourceKind::DataStore, d.access()).with_parent(&d.seclabels),
            );
        }
        for layer in &d.backing {
            if let Some(p) = &layer.path {
                out.push(
                    Resource::new(p, ResourceKind::Backing, Access::ReadOnly)
                        .with_overrides(&layer.seclabels)
                        .with_parent(&d.seclabels),
                );
            }
            if let Some(ds) = &layer.data_store {
                out.push(
                    Resource::new(ds, ResourceKind::DataStore, Access::ReadOnly)
                        .with_overrides(&layer.seclabels)
                        .with_parent(&d.seclabels),
                );
            }
        }
    }

    /// libvirt's `virSecuritySELinuxSetTPMFileLabel` and `virSecuritySELinuxSetTPMLabels`.
    fn tpm_resources(&self, t: &super::Tpm, out: &mut Vec<Resource>) {
        if t.passthrough {
            let dev = t.path.clone().unwrap_or_else(|| PathBuf::from("/dev/tpm0"));
            out.push(Resource::new(
                &dev,
                ResourceKind::TpmDevice,
                Access::Private,
            ));
            out.push(
                Resource::new(
                    format!("cancel file of {}", dev.display()),
                    ResourceKind::TpmCancel,
                    Access::Private,
                )
                .derived(Derive::TpmCancel { device: dev }),
            );
            return;
        }
        out.push(match &t.path {
            Some(p) => Resource::new(p, ResourceKind::Tpm, Access::Private),
            None => Resource::new("swtpm state directory", ResourceKind::Tpm, Access::Private)
                .derived(Derive::SwtpmState {
                    uuid: self.uuid.clone(),
                    version: t.version.clone(),
                }),
        });
        out.push(
            Resource::new("swtpm log", ResourceKind::TpmLog, Access::Private).derived(
                Derive::SwtpmLog {
                    name: self.name.clone(),
                },
            ),
        );
        out.push(
            Resource::new("swtpm socket", ResourceKind::TpmSocket, Access::Private).derived(
                Derive::SwtpmSocket {
                    name: self.name.clone(),
                },
            ),
        );
    }
}

/// libvirt's `virSecuritySELinuxSetHostdevSubsysLabel`.
fn host_device(h: &HostDevice) -> Resource {
    let placeholder = |s: String| Resource::new(s, ResourceKind::Hostdev, Access::Private);
    match h {
        HostDevice::Pci { address } => placeholder(format!("pci {address}")).derived(Derive::PciGroup {
            address: address.clone(),
        }),
        HostDevice::Mdev { uuid } => placeholder(format!("mdev {uuid}")).derived(Derive::MdevGroup {
            uuid: uuid.clone(),
        }),
        HostDevice::Usb { bus, device } => placeholder(format!("usb {bus:03}/{device:03}"))
            .derived(Derive::Usb {
                bus: *bus,
                device: *device,
            }),
        HostDevice::UsbByVendor { vendor, product } => {
            placeholder(format!("usb {vendor}:{product}")).skipped(
                "a USB device named by vendor and product only; give <address bus= device=> so svirt can find its node",
            )
        }
        HostDevice::Scsi {
            host,
            bus,
            target,
            unit,
            readonly,
            shareable,
        } => {
            // virSecuritySELinuxSetSCSILabel: shareable first, then readonly.
            let mut r = placeholder(format!("scsi {host}:{bus}:{target}:{unit}")).derived(
                Derive::ScsiGeneric {
                    host: *host,
                    bus: *bus,
                    target: *target,
                    unit: *unit,
                },
            );
            r.access = Access::from_flags(*readonly, *shareable);
            r
        }
        HostDevice::ScsiHost { .. } => placeholder("/dev/vhost-scsi".into()).derived(Derive::DevNode {
            name: "vhost-scsi".into(),
        }),
    }
}
