//! libvirt domain XML, as users already have it. Only what svirt labels is read; everything else
//! is ignored without error.

use std::path::PathBuf;

use roxmltree::{Document, Node};

use super::{Chardev, DeviceLabel, Disk, Domain, Filesystem, Hostdev, LabelType, SecLabel, Tpm};
use crate::error::{Error, Result};

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
    let os = child(root, "os");
    if let Some(o) = os {
        unique(o, &["kernel", "initrd", "dtb", "loader"]).map_err(err)?;
    }
    let os_path = |tag| os.and_then(|o| child_text(o, tag)).map(PathBuf::from);
    let mut d = Domain {
        name,
        uuid: child_text(root, "uuid"),
        kernel: os_path("kernel"),
        initrd: os_path("initrd"),
        dtb: os_path("dtb"),
        firmware: os
            .and_then(|o| child_text(o, "loader"))
            .map(PathBuf::from)
            .into_iter()
            .collect(),
        seclabels: Vec::new(),
        disks: Vec::new(),
        filesystems: Vec::new(),
        chardevs: Vec::new(),
        hostdevs: Vec::new(),
        tpms: Vec::new(),
        network: Default::default(),
    };
    for s in children(root, "seclabel") {
        d.seclabels.push(domain_seclabel(s).map_err(err)?);
    }
    let Some(devices) = child(root, "devices") else {
        return Ok(d);
    };
    for dev in devices.children().filter(Node::is_element) {
        match dev.tag_name().name() {
            "disk" => {
                if let Some(disk) = disk(dev).map_err(err)? {
                    d.disks.push(disk);
                }
            }
            "serial" | "console" | "parallel" | "channel" => {
                if let Some(c) = chardev(dev).map_err(err)? {
                    if !d.chardevs.iter().any(|x| x.path == c.path) {
                        d.chardevs.push(c);
                    }
                }
            }
            "hostdev" => {
                if let Some(h) = hostdev(dev).map_err(err)? {
                    d.hostdevs.push(h);
                }
            }
            "filesystem" => {
                let Some(src) = child(dev, "source") else {
                    continue;
                };
                let Some(dir) = src.attribute("dir") else {
                    continue;
                };
                d.filesystems.push(Filesystem {
                    path: PathBuf::from(dir),
                    readonly: child(dev, "readonly").is_some(),
                    seclabels: device_seclabels(src).map_err(err)?,
                });
            }
            "tpm" => {
                let Some(backend) = child(dev, "backend") else {
                    continue;
                };
                let path = match backend.attribute("type") {
                    Some("passthrough") => {
                        child(backend, "device").and_then(|x| x.attribute("path"))
                    }
                    Some("emulator") => child(backend, "source").and_then(|x| x.attribute("path")),
                    _ => None,
                };
                if let Some(p) = path {
                    d.tpms.push(Tpm {
                        path: PathBuf::from(p),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(d)
}

fn child<'a>(n: Node<'a, 'a>, tag: &str) -> Option<Node<'a, 'a>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

fn children<'a>(n: Node<'a, 'a>, tag: &'a str) -> impl Iterator<Item = Node<'a, 'a>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == tag)
}

fn child_text(n: Node<'_, '_>, tag: &str) -> Option<String> {
    child(n, tag)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn yes_no(v: Option<&str>, what: &str) -> std::result::Result<Option<bool>, String> {
    match v {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(other) => Err(format!("{what}='{other}' must be 'yes' or 'no'")),
    }
}

fn domain_seclabel(s: Node<'_, '_>) -> std::result::Result<SecLabel, String> {
    let kind = match s.attribute("type") {
        None => None,
        Some("dynamic") => Some(LabelType::Dynamic),
        Some("static") => Some(LabelType::Static),
        Some("none") => Some(LabelType::None),
        Some(other) => return Err(format!("unknown seclabel type '{other}'")),
    };
    let mut label = SecLabel {
        model: s.attribute("model").unwrap_or("").to_owned(),
        kind,
        relabel: yes_no(s.attribute("relabel"), "relabel")?,
        label: child_text(s, "label"),
        baselabel: child_text(s, "baselabel"),
        imagelabel: child_text(s, "imagelabel"),
        shared: false,
    };
    // libvirt: <label> is read for static labels only (a dynamic one is output of a live domain),
    // and imagelabel is output-only unless relabeling a static label.
    if label.kind() == LabelType::Dynamic {
        label.label = None;
        label.imagelabel = None;
    }
    if label.kind.is_none() && label.baselabel.is_some() {
        label.kind = Some(LabelType::Dynamic);
    }
    Ok(label)
}

fn device_seclabels(n: Node<'_, '_>) -> std::result::Result<Vec<DeviceLabel>, String> {
    children(n, "seclabel")
        .map(|s| {
            Ok(DeviceLabel {
                model: s.attribute("model").unwrap_or("").to_owned(),
                relabel: yes_no(s.attribute("relabel"), "relabel")?,
                label: child_text(s, "label"),
            })
        })
        .collect()
}

fn source_path(src: Node<'_, '_>) -> Option<PathBuf> {
    src.attribute("file")
        .or_else(|| src.attribute("dev"))
        .map(PathBuf::from)
}

fn disk(n: Node<'_, '_>) -> std::result::Result<Option<Disk>, String> {
    if matches!(
        n.attribute("type"),
        Some("network") | Some("dir") | Some("volume")
    ) {
        return Ok(None);
    }
    let Some(src) = child(n, "source") else {
        return Ok(None);
    };
    let Some(path) = source_path(src) else {
        return Ok(None);
    };
    let mut seclabels = device_seclabels(src)?;
    seclabels.extend(device_seclabels(n)?);
    let mut backing = Vec::new();
    let mut cur = child(n, "backingStore");
    while let Some(b) = cur {
        if let Some(p) = child(b, "source").and_then(source_path) {
            backing.push(p);
        }
        cur = child(b, "backingStore");
    }
    Ok(Some(Disk {
        path,
        readonly: child(n, "readonly").is_some(),
        shareable: child(n, "shareable").is_some(),
        backing,
        seclabels,
    }))
}

fn chardev(n: Node<'_, '_>) -> std::result::Result<Option<Chardev>, String> {
    if !matches!(n.attribute("type"), Some("file" | "pipe" | "unix" | "dev")) {
        return Ok(None);
    }
    let Some(src) = child(n, "source") else {
        return Ok(None);
    };
    let Some(path) = src.attribute("path") else {
        return Ok(None);
    };
    Ok(Some(Chardev {
        path: PathBuf::from(path),
        seclabels: device_seclabels(src)?,
    }))
}

fn hostdev(n: Node<'_, '_>) -> std::result::Result<Option<Hostdev>, String> {
    let Some(src) = child(n, "source") else {
        return Ok(None);
    };
    let path = child_text(src, "block")
        .or_else(|| child_text(src, "char"))
        .or_else(|| src.attribute("dev").map(str::to_owned));
    Ok(path.map(|p| Hostdev {
        path: PathBuf::from(p),
        readonly: child(n, "readonly").is_some(),
        seclabels: Vec::new(),
    }))
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
        let want = [
            ("/var/lib/svirt/boot/vmlinuz", Kernel, ReadOnly),
            ("/var/lib/svirt/boot/initrd", Initrd, ReadOnly),
            ("/var/lib/svirt/images/web1.qcow2", Disk, Private),
            ("/var/lib/svirt/images/base.qcow2", Backing, ReadOnly),
            ("/var/lib/svirt/images/root.qcow2", Backing, ReadOnly),
            ("/srv/iso/install.iso", Disk, ReadOnly),
            ("/dev/vg0/shared", Disk, Shared),
            ("/srv/web1", Filesystem, ReadOnly),
            ("/run/svirt/web1.serial", Chardev, Private),
            ("/dev/input/event3", Hostdev, Private),
            ("/var/lib/swtpm/web1", Tpm, Private),
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
