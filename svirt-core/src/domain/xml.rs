//! libvirt domain XML, as users already have it. Only what svirt labels is read; everything else
//! is ignored without error. Seclabels follow `src/conf/domain_conf.c` for configuration (not
//! live) XML: see [`super::xml_seclabel`].

use std::path::PathBuf;

use roxmltree::{Document, Node};

use super::xml_seclabel::{device_seclabels, domain_seclabels};
use super::{
    Chardev, ChardevKind, Disk, DiskSource, Domain, Filesystem, HostDevice, Hostdev, Layer,
    MemoryDevice, Tpm, VirtType,
};
use crate::error::{Error, Result};

type Res<T> = std::result::Result<T, String>;

fn unique(parent: Node, tags: &[&str]) -> std::result::Result<(), String> {
    for tag in tags {
        if parent
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == *tag)
            .nth(1)
            .is_some()
        {
            return Err(format!(
                "<{tag}> appears more than once in <{}>",
                parent.tag_name().name()
            ));
        }
    }
    Ok(())
}

pub(super) fn parse(text: &str, source_name: &str) -> Result<Domain> {
    let err = |reason: String| Error::DomainParse {
        source_name: source_name.to_owned(),
        format: "libvirt XML",
        reason,
    };
    let doc = Document::parse(text).map_err(|e| err(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Err(err(format!(
            "root element is <{}>, not <domain>",
            root.tag_name().name()
        )));
    }
    // Elements libvirt allows once: a second one would be silently ignored here (a second
    // <devices> would hide its disks from labeling), so it is refused.
    unique(root, &["name", "uuid", "os", "devices"]).map_err(err)?;
    let name = child_text(root, "name").ok_or_else(|| err("missing <name>".into()))?;
    if let Some(o) = child(root, "os") {
        unique(o, &["kernel", "initrd", "dtb", "loader", "nvram"]).map_err(err)?;
    }
    let mut d = Domain {
        name,
        uuid: child_text(root, "uuid"),
        virt_type: match root.attribute("type") {
            Some("kvm") | None => VirtType::Kvm,
            Some("qemu") => VirtType::Qemu,
            Some(_) => VirtType::Other,
        },
        ..Domain::default()
    };
    if let Some(os) = child(root, "os") {
        os_paths(os, &mut d);
    }
    for s in children(root, "sysinfo").filter(|s| s.attribute("type") == Some("fwcfg")) {
        for e in children(s, "entry") {
            if let Some(f) = e.attribute("file") {
                d.fwcfg_files.push(PathBuf::from(f));
            }
        }
    }
    d.seclabels = domain_seclabels(root).map_err(err)?;
    let Some(devices) = child(root, "devices") else {
        return Ok(d);
    };
    for dev in devices.children().filter(Node::is_element) {
        device(dev, &mut d).map_err(err)?;
    }
    Ok(d)
}

fn os_paths(os: Node<'_, '_>, d: &mut Domain) {
    let path = |tag| child_text(os, tag).map(PathBuf::from);
    d.kernel = path("kernel");
    d.initrd = path("initrd");
    d.dtb = path("dtb");
    d.shim = path("shim");
    d.loader = path("loader");
    // <nvram>PATH</nvram>, or <nvram type='file'><source file='PATH'/></nvram>; a network
    // nvram has nothing local to label.
    d.nvram = child(os, "nvram").and_then(|n| match n.attribute("type") {
        Some("network") => None,
        _ => child(n, "source")
            .and_then(|s| s.attribute("file").or_else(|| s.attribute("dev")))
            .map(PathBuf::from)
            .or_else(|| text_of(n).map(PathBuf::from)),
    });
    if let Some(acpi) = child(os, "acpi") {
        for t in children(acpi, "table") {
            if let Some(p) = text_of(t) {
                d.acpi_tables.push(PathBuf::from(p));
            }
        }
    }
}

fn device(dev: Node<'_, '_>, d: &mut Domain) -> Res<()> {
    match dev.tag_name().name() {
        "disk" => {
            if let Some(disk) = disk(dev)? {
                d.disks.push(disk);
            }
        }
        "serial" | "console" | "parallel" | "channel" => {
            if let Some(c) = chardev(dev)? {
                if !d.chardevs.iter().any(|x| x.path == c.path) {
                    d.chardevs.push(c);
                }
            }
        }
        "smartcard" => match dev.attribute("mode") {
            Some("host-certificates") => {
                // virSecuritySELinuxSetSecuritySmartcardCallback: default /etc/pki/nssdb.
                let db = child_text(dev, "database").unwrap_or_else(|| "/etc/pki/nssdb".into());
                d.smartcard_dbs.push(PathBuf::from(db));
            }
            Some("passthrough") => {
                if let Some(c) = chardev(dev)? {
                    d.chardevs.push(c);
                }
            }
            _ => {}
        },
        "hostdev" => hostdev(dev, d)?,
        "input" => {
            let src = child(dev, "source");
            let p = match dev.attribute("type") {
                Some("evdev") => src.and_then(|s| s.attribute("dev")),
                Some("passthrough") => src.and_then(|s| s.attribute("evdev")),
                _ => None,
            };
            if let Some(p) = p {
                d.inputs.push(PathBuf::from(p));
            }
        }
        "memory" => {
            let path = || {
                child(dev, "source")
                    .and_then(|s| child_text(s, "path"))
                    .map(PathBuf::from)
            };
            match dev.attribute("model") {
                Some("nvdimm") => d
                    .memory
                    .extend(path().map(|path| MemoryDevice::Nvdimm { path })),
                Some("virtio-pmem") => d
                    .memory
                    .extend(path().map(|path| MemoryDevice::VirtioPmem { path })),
                Some("sgx-epc") => d.memory.push(MemoryDevice::SgxEpc),
                _ => {}
            }
        }
        "filesystem" => {
            let Some(src) = child(dev, "source") else {
                return Ok(());
            };
            let Some(dir) = src.attribute("dir") else {
                return Ok(());
            };
            d.filesystems.push(Filesystem {
                path: PathBuf::from(dir),
                readonly: child(dev, "readonly").is_some(),
                seclabels: device_seclabels(src)?,
            });
        }
        "tpm" => tpm(dev, d),
        "pstore" => {
            if let Some(p) = child_text(dev, "path") {
                d.pstore = Some(PathBuf::from(p));
            }
        }
        _ => {}
    }
    Ok(())
}

fn tpm(dev: Node<'_, '_>, d: &mut Domain) {
    let Some(backend) = child(dev, "backend") else {
        return;
    };
    match backend.attribute("type") {
        Some("passthrough") => d.tpms.push(Tpm {
            path: child(backend, "device")
                .and_then(|x| x.attribute("path"))
                .map(PathBuf::from),
            passthrough: true,
            version: None,
        }),
        Some("emulator") => d.tpms.push(Tpm {
            // <source type='dir' path=...> or, for a state file, type='file'.
            path: child(backend, "source")
                .and_then(|x| x.attribute("path"))
                .map(PathBuf::from),
            passthrough: false,
            version: backend.attribute("version").map(str::to_owned),
        }),
        Some("external") => {
            // An swtpm the user runs: QEMU connects to its socket.
            if let Some(p) = child(backend, "source").and_then(|s| s.attribute("path")) {
                d.chardevs.push(Chardev {
                    path: PathBuf::from(p),
                    kind: ChardevKind::UnixConnect,
                    seclabels: Vec::new(),
                });
            }
        }
        _ => {}
    }
}

pub(super) fn child<'a>(n: Node<'a, 'a>, tag: &str) -> Option<Node<'a, 'a>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

pub(super) fn children<'a>(
    n: Node<'a, 'a>,
    tag: &'a str,
) -> impl Iterator<Item = Node<'a, 'a>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == tag)
}

fn text_of(n: Node<'_, '_>) -> Option<String> {
    n.text()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

pub(super) fn child_text(n: Node<'_, '_>, tag: &str) -> Option<String> {
    child(n, tag).and_then(text_of)
}

fn source_path(src: Node<'_, '_>) -> Option<PathBuf> {
    src.attribute("file")
        .or_else(|| src.attribute("dev"))
        .map(PathBuf::from)
}

/// `0000:01:00.0` from an `<address domain= bus= slot= function=>` element.
fn pci_address(a: Node<'_, '_>) -> Res<String> {
    let num = |attr: &str| -> Res<u32> {
        let v = a.attribute(attr).unwrap_or("0");
        let (digits, radix) = match v.strip_prefix("0x") {
            Some(h) => (h, 16),
            None => (v, 10),
        };
        u32::from_str_radix(digits, radix).map_err(|_| format!("bad PCI address {attr}='{v}'"))
    };
    Ok(format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        num("domain")?,
        num("bus")?,
        num("slot")?,
        num("function")?
    ))
}

fn layer_data_store(src: Option<Node<'_, '_>>) -> Option<PathBuf> {
    src.and_then(|s| child(s, "dataStore"))
        .and_then(|ds| child(ds, "source"))
        .and_then(source_path)
}

fn disk(n: Node<'_, '_>) -> Res<Option<Disk>> {
    let src = child(n, "source");
    let (source, path) = match n.attribute("type") {
        Some("file") | Some("block") | None => match src.and_then(source_path) {
            Some(p) => (DiskSource::File, p),
            None => return Ok(None),
        },
        Some("dir") => match src.and_then(|s| s.attribute("dir")) {
            Some(p) => (DiskSource::Dir, PathBuf::from(p)),
            None => return Ok(None),
        },
        Some("network") => {
            let s = src.ok_or("a network disk needs a <source>")?;
            let proto = s.attribute("protocol").unwrap_or("network");
            let name = s.attribute("name").unwrap_or("");
            (
                DiskSource::Network,
                PathBuf::from(format!("{proto}:{name}")),
            )
        }
        Some("volume") => {
            let s = src.ok_or("a volume disk needs a <source>")?;
            let pool = s.attribute("pool").unwrap_or("");
            let vol = s.attribute("volume").unwrap_or("");
            (
                DiskSource::Volume,
                PathBuf::from(format!("volume:{pool}/{vol}")),
            )
        }
        Some("nvme") => {
            let s = src.ok_or("an NVMe disk needs a <source>")?;
            let a = child(s, "address").ok_or("an NVMe disk needs a PCI <address>")?;
            let address = pci_address(a)?;
            (
                DiskSource::Nvme {
                    address: address.clone(),
                },
                PathBuf::from(format!("nvme:{address}")),
            )
        }
        // vhost-user and vDPA disks have nothing libvirt relabels as an image.
        Some(_) => return Ok(None),
    };
    // Only <source><seclabel> is parsed: a <seclabel> directly under <disk> is not
    // (virDomainStorageSourceParse reads seclabels relative to <source>).
    let seclabels = match src {
        Some(s) => device_seclabels(s)?,
        None => Vec::new(),
    };
    let mut backing = Vec::new();
    let mut cur = child(n, "backingStore");
    while let Some(b) = cur {
        let bsrc = child(b, "source");
        let local = matches!(b.attribute("type"), Some("file") | Some("block"));
        if bsrc.is_some() || b.attribute("type").is_some() {
            backing.push(Layer {
                path: if local {
                    bsrc.and_then(source_path)
                } else {
                    None
                },
                seclabels: match bsrc {
                    Some(s) => device_seclabels(s)?,
                    None => Vec::new(),
                },
                data_store: layer_data_store(bsrc),
            });
        }
        cur = child(b, "backingStore");
    }
    Ok(Some(Disk {
        path,
        readonly: child(n, "readonly").is_some(),
        shareable: child(n, "shareable").is_some(),
        backing,
        seclabels,
        data_store: layer_data_store(src),
        source,
    }))
}

fn chardev(n: Node<'_, '_>) -> Res<Option<Chardev>> {
    let kind = match n.attribute("type") {
        Some("file") | Some("dev") => ChardevKind::File,
        Some("pipe") => ChardevKind::Pipe,
        Some("unix") => ChardevKind::UnixConnect,
        _ => return Ok(None),
    };
    let Some(src) = child(n, "source") else {
        return Ok(None);
    };
    let Some(path) = src.attribute("path") else {
        return Ok(None);
    };
    // virDomainChrSourceDefParseXML: mode='bind' listens; anything else connects.
    let kind = match (kind, src.attribute("mode")) {
        (ChardevKind::UnixConnect, Some("bind")) => ChardevKind::UnixListen,
        (k, _) => k,
    };
    Ok(Some(Chardev {
        path: PathBuf::from(path),
        kind,
        seclabels: device_seclabels(src)?,
    }))
}

fn num_attr(n: Option<Node<'_, '_>>, attr: &str) -> Res<u32> {
    let v = n
        .and_then(|n| n.attribute(attr))
        .ok_or(format!("missing {attr}="))?;
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("bad {attr}='{v}'"))
}

fn hostdev(n: Node<'_, '_>, d: &mut Domain) -> Res<()> {
    let Some(src) = child(n, "source") else {
        return Ok(());
    };
    let readonly = child(n, "readonly").is_some();
    if n.attribute("mode") == Some("capabilities") {
        let path = child_text(src, "block").or_else(|| child_text(src, "char"));
        if let Some(p) = path {
            // virSecuritySELinuxSetHostdevCapsLabel: the image label, whatever else is said.
            d.hostdevs.push(Hostdev {
                path: PathBuf::from(p),
                readonly: false,
                seclabels: Vec::new(),
            });
        }
        return Ok(());
    }
    let dev = match n.attribute("type") {
        Some("pci") => {
            let a = child(src, "address").ok_or("a PCI hostdev needs an <address>")?;
            HostDevice::Pci {
                address: pci_address(a)?,
            }
        }
        Some("usb") => {
            let a = child(src, "address");
            if a.is_none() {
                let id = |tag| {
                    child(src, tag)
                        .and_then(|v| v.attribute("id"))
                        .unwrap_or("")
                        .to_owned()
                };
                d.host_devices.push(HostDevice::UsbByVendor {
                    vendor: id("vendor"),
                    product: id("product"),
                });
                return Ok(());
            }
            HostDevice::Usb {
                bus: num_attr(a, "bus")?,
                device: num_attr(a, "device")?,
            }
        }
        Some("scsi") => {
            if src.attribute("protocol") == Some("iscsi") {
                return Ok(()); // iSCSI: nothing local to label.
            }
            let adapter = child(src, "adapter")
                .and_then(|a| a.attribute("name"))
                .ok_or("a SCSI hostdev needs <adapter name='scsi_hostN'/>")?;
            let host = adapter
                .strip_prefix("scsi_host")
                .and_then(|h| h.parse().ok())
                .ok_or(format!("bad SCSI adapter name '{adapter}'"))?;
            let a = child(src, "address");
            HostDevice::Scsi {
                host,
                bus: num_attr(a, "bus")?,
                target: num_attr(a, "target")?,
                unit: num_attr(a, "unit")?,
                readonly,
                shareable: child(n, "shareable").is_some(),
            }
        }
        Some("scsi_host") => HostDevice::ScsiHost {
            wwpn: src.attribute("wwpn").unwrap_or("").to_owned(),
        },
        Some("mdev") => HostDevice::Mdev {
            uuid: child(src, "address")
                .and_then(|a| a.attribute("uuid"))
                .ok_or("an mdev hostdev needs <address uuid=>")?
                .to_owned(),
        },
        _ => return Ok(()),
    };
    d.host_devices.push(dev);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Access, Domain, LabelType, ResourceKind};
    use crate::error::Error;

    #[test]
    fn elements_libvirt_allows_once_are_refused_when_repeated() {
        for (xml, tag) in [
            ("<domain><name>a</name><name>b</name></domain>", "<name>"),
            (
                "<domain><name>a</name><uuid>1</uuid><uuid>2</uuid></domain>",
                "<uuid>",
            ),
            (
                "<domain><name>a</name><devices/><devices><disk type='file'><source file='/x'/></disk></devices></domain>",
                "<devices>",
            ),
            (
                "<domain><name>a</name><os><kernel>/a</kernel><kernel>/etc/shadow</kernel></os></domain>",
                "<kernel>",
            ),
        ] {
            match Domain::from_xml(xml, "t.xml") {
                Err(Error::DomainParse { reason, .. }) => {
                    assert!(reason.contains(&format!("{tag} appears more than once")), "{reason}")
                }
                other => panic!("{xml}: expected a parse error, got {other:?}"),
            }
        }
    }

    const XML: &str = r#"<domain type='kvm' id='3'>
  <name>web1</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
      <kernel>/var/lib/svirt/boot/vmlinuz</kernel><initrd>/var/lib/svirt/boot/initrd</initrd></os>
  <features><acpi/><apic/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/svirt/images/web1.qcow2'>
        <seclabel model='selinux' relabel='yes'><label>system_u:object_r:svirt_image_t:s0:c5,c9</label></seclabel>
      </source>
      <backingStore type='file'><format type='qcow2'/>
        <source file='/var/lib/svirt/images/base.qcow2'/>
        <backingStore type='file'><source file='/var/lib/svirt/images/root.qcow2'/><backingStore/></backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><source file='/srv/iso/install.iso'/><readonly/><target dev='sda'/></disk>
    <disk type='block' device='disk'><source dev='/dev/vg0/shared'/><shareable/><target dev='vdb'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/></disk>
    <filesystem type='mount' accessmode='passthrough'><source dir='/srv/web1'/><target dir='share'/><readonly/></filesystem>
    <serial type='unix'><source mode='bind' path='/run/svirt/web1.serial'/><target port='0'/></serial>
    <console type='unix'><source mode='bind' path='/run/svirt/web1.serial'/></console>
    <channel type='pty'><target type='virtio'/></channel>
    <hostdev mode='capabilities' type='misc'><source><char>/dev/input/event3</char></source></hostdev>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'><source type='dir' path='/var/lib/swtpm/web1'/></backend></tpm>
    <interface type='network'><source network='default'/></interface>
    <graphics type='vnc' port='-1'/>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c5,c9</label>
    <imagelabel>system_u:object_r:svirt_image_t:s0:c5,c9</imagelabel>
    <baselabel>system_u:system_r:svirt_tcg_t:s0</baselabel>
  </seclabel>
  <seclabel type='static' model='dac' relabel='yes'><label>+64010:+64010</label></seclabel>
</domain>"#;

    #[test]
    fn real_libvirt_xml_parses_and_ignores_the_rest() {
        let d = Domain::from_xml(XML, "web1.xml").unwrap();
        assert_eq!(d.name, "web1");
        assert_eq!(
            d.uuid.as_deref(),
            Some("c7a5fdbd-edaf-9455-926a-d65c16db1809")
        );
        let se = d.seclabel("selinux").unwrap();
        assert_eq!(se.kind(), LabelType::Dynamic);
        assert_eq!(se.label, None, "a live dynamic label is output, not input");
        assert_eq!(
            se.baselabel.as_deref(),
            Some("system_u:system_r:svirt_tcg_t:s0")
        );
        let dac = d.seclabel("dac").unwrap();
        assert_eq!(dac.label.as_deref(), Some("+64010:+64010"));
        let res: Vec<_> = d
            .resources()
            .into_iter()
            .map(|r| (r.path.display().to_string(), r.kind, r.access))
            .collect();
        use Access::*;
        use ResourceKind::*;
        // libvirt's SetAllLabel order: disks and chains, TPM, chardevs, kernel/initrd; then
        // svirt's own (shares, capability host devices).
        let want = [
            ("/var/lib/svirt/images/web1.qcow2", Disk, Private),
            ("/var/lib/svirt/images/base.qcow2", Backing, ReadOnly),
            ("/var/lib/svirt/images/root.qcow2", Backing, ReadOnly),
            ("/srv/iso/install.iso", Disk, ReadOnly),
            ("/dev/vg0/shared", Disk, Shared),
            ("rbd:pool/img", Disk, Private),
            ("/var/lib/swtpm/web1", Tpm, Private),
            ("swtpm log", TpmLog, Private),
            ("swtpm socket", TpmSocket, Private),
            ("/run/svirt/web1.serial", Chardev, Private),
            ("/var/lib/svirt/boot/vmlinuz", Kernel, ReadOnly),
            ("/var/lib/svirt/boot/initrd", Initrd, ReadOnly),
            ("/srv/web1", Filesystem, ReadOnly),
            ("/dev/input/event3", Hostdev, Private),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(p, k, a)| (p.to_string(), *k, *a))
            .collect();
        assert_eq!(res, want);
        assert_eq!(
            d.disks[0].seclabels[0].label.as_deref(),
            Some("system_u:object_r:svirt_image_t:s0:c5,c9")
        );
    }

    #[test]
    fn xml_rules_match_toml_rules() {
        let bad = "<domain><name>a</name><seclabel type='dynamic' model='selinux' relabel='no'/></domain>";
        let e = Domain::from_xml(bad, "a.xml").unwrap_err().to_string();
        assert!(
            e.contains("dynamic label type must use resource relabeling"),
            "{e}"
        );
        let bad = "<domain><name>a</name><seclabel type='none' relabel='maybe'/></domain>";
        assert!(Domain::from_xml(bad, "a.xml").is_err());
        let nomodel = "<domain><name>a</name><seclabel type='dynamic' relabel='yes'/></domain>";
        let d = Domain::from_xml(nomodel, "a.xml").unwrap();
        assert_eq!(
            d.seclabels[0].model, "",
            "no model means the primary driver's"
        );
    }

    #[test]
    fn malformed_xml_is_a_parse_error_not_a_panic() {
        for bad in [
            "",
            "<domain>",
            "<vm><name>a</name></vm>",
            "<domain><uuid>x</uuid></domain>",
        ] {
            assert!(Domain::from_xml(bad, "x.xml").is_err(), "{bad}");
        }
    }
}
