//! The SELinux driver against libvirt's semantics, with libvirt-shaped domain XML on the fake
//! host (a fake sysfs and /dev): every resource kind libvirt labels gets libvirt's label, the
//! backing-chain and device seclabel rules, shared-over-read-only, the loader left alone, listen
//! sockets and pipe halves, label generation (virSecuritySELinuxGenLabel) for any manager context
//! and for TCG, and stop putting every original back.

use std::path::Path;
use std::sync::Arc;

use svirt_core::config::BuildContext;
use svirt_core::context::SecurityContext;
use svirt_core::db::Db;
use svirt_core::domain::{Domain, HostPaths};
use svirt_core::domains::{Domains, Record};
use svirt_core::host::fake::FakeHost;
use svirt_core::host::FileKind;
use svirt_core::manager::SecurityManager;
use svirt_selinux::{Contexts, Kernel, SelinuxDriver};

const ORIG: &str = "system_u:object_r:default_t:s0";
const CONTENT: &str = "system_u:object_r:virt_content_t:s0";
const SHARED: &str = "system_u:object_r:svirt_image_t:s0";
const TCG: &str = "system_u:system_r:svirt_tcg_t:s0";

#[derive(Debug)]
struct NoKernel;
impl Kernel for NoKernel {
    fn mode(&self) -> Option<bool> {
        None
    }
    fn current_context(&self) -> std::io::Result<String> {
        Err(std::io::Error::from_raw_os_error(22))
    }
    fn check_context(&self, _ctx: &str) -> Option<bool> {
        None
    }
}

struct Rig {
    host: Arc<FakeHost>,
    domains: Domains,
    _dir: tempfile::TempDir,
}

fn rig_full(manager: &str, tcg: Option<&str>, paths: HostPaths) -> Rig {
    let host = Arc::new(FakeHost::new());
    let dir = tempfile::tempdir().unwrap();
    let contexts = Contexts {
        manager: manager.parse().unwrap(),
        domain: "system_u:system_r:svirt_t:s0".parse().unwrap(),
        tcg: tcg.map(|t| t.parse().unwrap()),
        image: SHARED.parse().unwrap(),
        content: CONTENT.parse().unwrap(),
    };
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let mut ctx = BuildContext::new(dir.path().to_owned(), host.clone(), db.clone());
    ctx.host_paths = paths.clone();
    let driver = SelinuxDriver::new(true, contexts, Arc::new(NoKernel), &ctx).unwrap();
    let manager = SecurityManager::new(vec![Arc::new(driver)], false).unwrap();
    Rig {
        domains: Domains::new(manager, host.clone(), db, dir.path(), None).with_host_paths(paths),
        host,
        _dir: dir,
    }
}

fn rig() -> Rig {
    rig_full(
        "system_u:system_r:virtd_t:s0-s0:c0.c1023",
        Some(TCG),
        HostPaths::default(),
    )
}

impl Rig {
    fn node(&self, p: &str, kind: FileKind) {
        self.host.add(Path::new(p), kind, 0, 0, 0o644);
        self.host
            .put_xattr(p, "security.selinux", format!("{ORIG}\0").as_bytes());
    }
    fn file(&self, p: &str) {
        self.node(p, FileKind::File);
    }
    fn dev(&self, p: &str) {
        self.node(p, FileKind::Char);
    }
    fn label(&self, p: &str) -> String {
        self.host.label(p).unwrap_or_default()
    }
    async fn start(&self, xml: &str) -> Record {
        let d = Domain::from_xml(xml, "t.xml").unwrap();
        self.domains.start(d).await.unwrap()
    }
    async fn stop(&self, rec: &Record) {
        self.domains.stop(&rec.domain.name).await.unwrap();
    }
    fn assert_restored(&self, paths: &[&str]) {
        for p in paths {
            assert_eq!(self.label(p), ORIG, "{p} not restored");
            let left: Vec<_> = self
                .host
                .xattr_names(p)
                .into_iter()
                .filter(|n| n.contains("svirt"))
                .collect();
            assert!(left.is_empty(), "{p} keeps {left:?}");
        }
    }
}

fn xml(devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>vm</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <os><type>hvm</type></os><devices>{devices}</devices>\
         <seclabel type='dynamic' model='selinux'/></domain>"
    )
}

const FULL: &str = r#"<domain type='kvm'>
  <name>full</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/vm/nvram/full_VARS.fd</nvram>
    <kernel>/vm/boot/vmlinuz</kernel>
    <shim>/vm/boot/shim.efi</shim>
    <acpi><table type='slic'>/vm/boot/slic.bin</table></acpi>
  </os>
  <sysinfo type='fwcfg'><entry name='opt/com.example/config' file='/vm/fwcfg/config.bin'/></sysinfo>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/vm/img/top.qcow2'>
        <dataStore type='file'><format type='raw'/><source file='/vm/img/top.raw'/></dataStore>
      </source>
      <backingStore type='file'><format type='qcow2'/><source file='/vm/img/base.qcow2'/><backingStore/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'><source file='/vm/img/both.img'/><readonly/><shareable/><target dev='vdb'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/>
      <backingStore type='file'><source file='/vm/img/netbase.qcow2'/></backingStore><target dev='vdc'/></disk>
    <disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'>
      <address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source><target dev='vdd'/></disk>
    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source></hostdev>
    <hostdev mode='subsystem' type='usb' managed='yes'><source><vendor id='0x1234'/><product id='0xbeef'/><address bus='1' device='5'/></source></hostdev>
    <hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' unit='0'/></source><readonly/><shareable/></hostdev>
    <hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host1'/><address bus='0' target='1' unit='0'/></source><readonly/></hostdev>
    <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='naa.50014057667280d8'/></hostdev>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>
    <input type='evdev'><source dev='/dev/input/event1' grab='all'/></input>
    <input type='passthrough' bus='virtio'><source evdev='/dev/input/event2'/></input>
    <memory model='nvdimm'><source><path>/vm/mem/nvdimm</path></source><target><size unit='KiB'>524288</size></target></memory>
    <memory model='virtio-pmem' access='shared'><source><path>/vm/mem/pmem</path></source></memory>
    <memory model='sgx-epc'><target><size unit='KiB'>16384</size></target></memory>
    <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>
    <serial type='unix'><source mode='connect' path='/vm/run/connect.sock'/><target port='0'/></serial>
    <channel type='unix'><source mode='bind' path='/vm/run/listen.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pipe'><source path='/vm/run/pipe'/><target port='1'/></serial>
    <console type='file'><source path='/vm/log/console.log'/></console>
    <smartcard mode='host-certificates'><certificate>cert1</certificate><database>/vm/nssdb</database></smartcard>
    <pstore backend='acpi-erst'><path>/vm/nvram/pstore.nvram</path><size unit='KiB'>8</size></pstore>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
</domain>"#;

fn full_host(r: &Rig) {
    for f in [
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/vm/nvram/full_VARS.fd",
        "/vm/boot/vmlinuz",
        "/vm/boot/shim.efi",
        "/vm/boot/slic.bin",
        "/vm/fwcfg/config.bin",
        "/vm/img/top.qcow2",
        "/vm/img/top.raw",
        "/vm/img/base.qcow2",
        "/vm/img/both.img",
        "/vm/img/netbase.qcow2",
        "/vm/mem/nvdimm",
        "/vm/mem/pmem",
        "/vm/log/console.log",
        "/vm/nssdb/cert9.db",
        "/vm/nvram/pstore.nvram",
        "/sys/class/tpm/tpm0/device/cancel",
    ] {
        r.file(f);
    }
    r.node("/vm/nssdb", FileKind::Dir);
    r.node("/vm/run/connect.sock", FileKind::Socket);
    r.node("/vm/run/pipe.in", FileKind::Fifo);
    r.node("/vm/run/pipe.out", FileKind::Fifo);
    for d in [
        "/dev/vfio/7",
        "/dev/vfio/9",
        "/dev/vfio/12",
        "/dev/bus/usb/001/005",
        "/dev/sg3",
        "/dev/sg4",
        "/dev/vhost-scsi",
        "/dev/input/event1",
        "/dev/input/event2",
        "/dev/sgx_vepc",
        "/dev/sgx_provision",
        "/dev/tpm0",
    ] {
        r.dev(d);
    }
    // sysfs: two functions of one card share IOMMU group 7; the NVMe controller is in group 9.
    for (dev, group) in [
        ("/sys/bus/pci/devices/0000:01:00.0", 7),
        ("/sys/bus/pci/devices/0000:01:00.1", 7),
        ("/sys/bus/pci/devices/0000:03:00.0", 9),
        (
            "/sys/bus/mdev/devices/c2177883-f1bb-47f0-914d-32a22e3a8804",
            12,
        ),
    ] {
        r.host.add_symlink(
            &format!("{dev}/iommu_group"),
            &format!("../../../kernel/iommu_groups/{group}"),
        );
    }
    r.host.add(
        Path::new("/sys/bus/scsi/devices/0:0:0:0/scsi_generic/sg3"),
        FileKind::Dir,
        0,
        0,
        0o755,
    );
    r.host.add(
        Path::new("/sys/bus/scsi/devices/1:0:1:0/scsi_generic/sg4"),
        FileKind::Dir,
        0,
        0,
        0o755,
    );
}

#[tokio::test]
async fn every_resource_kind_gets_libvirts_label_and_stop_restores_it() {
    let r = rig();
    full_host(&r);
    let vm = r.start(FULL).await;
    let image = vm.labels[0].imagelabel.clone().unwrap();
    let img = image.as_str();
    let want = [
        ("/vm/img/top.qcow2", img),
        ("/vm/img/top.raw", img),
        ("/vm/img/base.qcow2", CONTENT),
        ("/vm/img/both.img", SHARED),
        ("/vm/img/netbase.qcow2", CONTENT),
        ("/dev/vfio/9", img),
        ("/dev/vfio/7", img),
        ("/dev/bus/usb/001/005", img),
        ("/dev/sg3", SHARED),
        ("/dev/sg4", CONTENT),
        ("/dev/vhost-scsi", img),
        ("/dev/vfio/12", img),
        ("/dev/input/event1", img),
        ("/dev/input/event2", img),
        ("/vm/mem/nvdimm", img),
        ("/vm/mem/pmem", img),
        ("/dev/sgx_vepc", img),
        ("/dev/sgx_provision", img),
        ("/dev/tpm0", img),
        ("/sys/class/tpm/tpm0/device/cancel", img),
        ("/vm/run/connect.sock", img),
        ("/vm/run/pipe.in", img),
        ("/vm/run/pipe.out", img),
        ("/vm/log/console.log", img),
        ("/vm/nssdb", CONTENT),
        ("/vm/nssdb/cert9.db", CONTENT),
        ("/vm/fwcfg/config.bin", CONTENT),
        ("/vm/nvram/full_VARS.fd", img),
        ("/vm/boot/vmlinuz", CONTENT),
        ("/vm/boot/slic.bin", CONTENT),
        ("/vm/boot/shim.efi", CONTENT),
        ("/vm/nvram/pstore.nvram", img),
        ("/usr/share/OVMF/OVMF_CODE.fd", ORIG),
    ];
    for (p, l) in want {
        assert_eq!(r.label(p), l, "{p}");
    }
    r.stop(&vm).await;
    let all: Vec<&str> = want.iter().map(|(p, _)| *p).collect();
    r.assert_restored(&all);
}

#[tokio::test]
async fn the_plan_names_every_resource_and_why_some_are_skipped() {
    let r = rig();
    full_host(&r);
    let d = Domain::from_xml(FULL, "full.xml").unwrap();
    let plan = r.domains.plan(&d).await.unwrap();
    let find = |p: &str| {
        plan.iter()
            .find(|x| x.path == Path::new(p))
            .unwrap_or_else(|| panic!("{p} missing from {plan:#?}"))
    };
    let loader = find("/usr/share/OVMF/OVMF_CODE.fd");
    assert!(loader.label.is_none());
    assert!(
        loader.skipped.as_deref().unwrap().contains("loader"),
        "{loader:?}"
    );
    let listen = find("/vm/run/listen.sock");
    assert!(
        listen.skipped.as_deref().unwrap().contains("listen"),
        "{listen:?}"
    );
    assert!(find("rbd:pool/img").skipped.is_some());
    assert_eq!(find("/vm/img/base.qcow2").label.as_deref(), Some(CONTENT));
    assert_eq!(
        plan.iter()
            .filter(|x| x.path == Path::new("/dev/vfio/7"))
            .count(),
        1,
        "one IOMMU group, one entry"
    );
    // Planning changed no file and left no reservation behind.
    assert_eq!(r.label("/vm/img/top.qcow2"), ORIG);
    let again = r.domains.plan(&d).await.unwrap();
    assert_eq!(again.len(), plan.len());
}

#[tokio::test]
async fn host_paths_are_parameters() {
    let paths = HostPaths {
        sysfs: "/fake/sys".into(),
        dev: "/fake/dev".into(),
        ..HostPaths::default()
    };
    let r = rig_full("system_u:system_r:virtd_t:s0-s0:c0.c1023", None, paths);
    r.host.add_symlink(
        "/fake/sys/bus/pci/devices/0000:05:00.0/iommu_group",
        "../../../kernel/iommu_groups/31",
    );
    r.dev("/fake/dev/vfio/31");
    let vm = r
        .start(&xml(
            "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='5' slot='0' function='0'/></source></hostdev>",
        ))
        .await;
    assert_eq!(
        r.label("/fake/dev/vfio/31"),
        vm.labels[0].imagelabel.clone().unwrap()
    );
    r.stop(&vm).await;
    r.assert_restored(&["/fake/dev/vfio/31"]);
}

#[tokio::test]
async fn a_pci_device_without_an_iommu_group_fails_the_start() {
    let r = rig();
    let d = Domain::from_xml(
        &xml("<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='9' slot='0' function='0'/></source></hostdev>"),
        "t.xml",
    )
    .unwrap();
    let e = r.domains.start(d).await.unwrap_err();
    assert!(svirt_core::display_chain(&e).contains("iommu_group"), "{e}");
}

#[tokio::test]
async fn relabel_no_on_the_top_disk_leaves_the_whole_chain_alone() {
    let r = rig();
    for f in ["/c/top.qcow2", "/c/mid.qcow2", "/c/base.qcow2"] {
        r.file(f);
    }
    let vm = r
        .start(&xml(
            "<disk type='file'><source file='/c/top.qcow2'><seclabel model='selinux' relabel='no'/></source>\
             <backingStore type='file'><source file='/c/mid.qcow2'/>\
             <backingStore type='file'><source file='/c/base.qcow2'/></backingStore></backingStore></disk>",
        ))
        .await;
    for p in ["/c/top.qcow2", "/c/mid.qcow2", "/c/base.qcow2"] {
        assert_eq!(r.label(p), ORIG, "{p}");
    }
    r.stop(&vm).await;
    r.assert_restored(&["/c/top.qcow2", "/c/mid.qcow2", "/c/base.qcow2"]);
}

#[tokio::test]
async fn a_custom_top_label_applies_to_the_backing_layers_too() {
    let r = rig();
    for f in ["/c/top.qcow2", "/c/base.qcow2"] {
        r.file(f);
    }
    let custom = "system_u:object_r:svirt_image_t:s0:c7,c8";
    let vm = r
        .start(&xml(&format!(
            "<disk type='file'><source file='/c/top.qcow2'><seclabel model='selinux' relabel='yes'><label>{custom}</label></seclabel></source>\
             <backingStore type='file'><source file='/c/base.qcow2'/></backingStore></disk>"
        )))
        .await;
    assert_eq!(r.label("/c/top.qcow2"), custom);
    assert_eq!(r.label("/c/base.qcow2"), custom);
    r.stop(&vm).await;
    r.assert_restored(&["/c/top.qcow2", "/c/base.qcow2"]);
}

#[tokio::test]
async fn a_backing_layers_own_relabel_no_is_honored() {
    let r = rig();
    for f in ["/c/top.qcow2", "/c/mid.qcow2", "/c/base.qcow2"] {
        r.file(f);
    }
    let vm = r
        .start(&xml(
            "<disk type='file'><source file='/c/top.qcow2'/>\
             <backingStore type='file'><source file='/c/mid.qcow2'><seclabel model='selinux' relabel='no'/></source>\
             <backingStore type='file'><source file='/c/base.qcow2'/></backingStore></backingStore></disk>",
        ))
        .await;
    assert_eq!(
        r.label("/c/top.qcow2"),
        vm.labels[0].imagelabel.clone().unwrap()
    );
    assert_eq!(r.label("/c/mid.qcow2"), ORIG);
    assert_eq!(r.label("/c/base.qcow2"), CONTENT);
    r.stop(&vm).await;
    r.assert_restored(&["/c/top.qcow2", "/c/mid.qcow2", "/c/base.qcow2"]);
}

#[tokio::test]
async fn a_listen_socket_qemu_will_create_is_skipped_and_an_existing_one_labeled() {
    let r = rig();
    let devs = "<channel type='unix'><source mode='bind' path='/s/agent.sock'/></channel>";
    let vm = r.start(&xml(devs)).await;
    assert_eq!(r.host.label("/s/agent.sock"), None, "nothing was created");
    r.stop(&vm).await;
    r.node("/s/agent.sock", FileKind::Socket);
    let vm = r.start(&xml(devs)).await;
    assert_eq!(
        r.label("/s/agent.sock"),
        vm.labels[0].imagelabel.clone().unwrap()
    );
    r.stop(&vm).await;
    r.assert_restored(&["/s/agent.sock"]);
}

#[tokio::test]
async fn a_pipe_without_halves_is_labeled_itself() {
    let r = rig();
    r.node("/p/fifo", FileKind::Fifo);
    let vm = r
        .start(&xml(
            "<serial type='pipe'><source path='/p/fifo'/></serial>",
        ))
        .await;
    assert_eq!(r.label("/p/fifo"), vm.labels[0].imagelabel.clone().unwrap());
    r.stop(&vm).await;
    r.assert_restored(&["/p/fifo"]);
}

#[tokio::test]
async fn the_same_image_as_a_disk_and_a_backing_layer_is_accepted() {
    let r = rig();
    for f in ["/c/a.qcow2", "/c/b.qcow2", "/c/base.qcow2"] {
        r.file(f);
    }
    let vm = r
        .start(&xml(
            "<disk type='file'><source file='/c/a.qcow2'/><backingStore type='file'><source file='/c/base.qcow2'/></backingStore></disk>\
             <disk type='file'><source file='/c/b.qcow2'/><backingStore type='file'><source file='/c/base.qcow2'/></backingStore></disk>\
             <disk type='file'><source file='/c/base.qcow2'/><readonly/></disk>",
        ))
        .await;
    assert_eq!(r.label("/c/base.qcow2"), CONTENT);
    r.stop(&vm).await;
    r.assert_restored(&["/c/a.qcow2", "/c/b.qcow2", "/c/base.qcow2"]);
}

/// virSecuritySELinuxGenLabel for many manager contexts and both domain types: the process
/// label takes the manager's user and role, the base type (TCG for type='qemu' when the policy
/// has it), and a pair of distinct categories at the manager's low sensitivity within its
/// category range; the image label takes the manager's user, object_r, the image type and the
/// same range.
#[tokio::test]
async fn generated_labels_follow_the_manager_context_for_kvm_and_tcg() {
    let cases = [
        ("system_u:system_r:virtd_t:s0-s0:c0.c1023", 0, 0, 1023),
        (
            "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023",
            0,
            0,
            1023,
        ),
        ("staff_u:sysadm_r:virtd_t:s0", 0, 0, 1023),
        ("system_u:system_r:virtd_t", 0, 0, 1023),
        ("system_u:system_r:virtd_t:s0-s0", 0, 0, 1023),
        ("system_u:system_r:virtd_t:s2-s3:c0.c1023", 2, 0, 1023),
        ("xuser_u:xrole_r:virtd_t:s1-s15:c100.c107", 1, 100, 107),
    ];
    for (manager, sens, lo, hi) in cases {
        let mgr: SecurityContext = manager.parse().unwrap();
        for (virt, tcg_line, want_type) in [
            ("kvm", Some(TCG), "svirt_t"),
            ("qemu", Some(TCG), "svirt_tcg_t"),
            ("qemu", None, "svirt_t"),
        ] {
            let r = rig_full(manager, tcg_line, HostPaths::default());
            let d = Domain::from_xml(
                &format!("<domain type='{virt}'><name>g</name><seclabel type='dynamic' model='selinux'/></domain>"),
                "g.xml",
            )
            .unwrap();
            let l = &r.domains.manager().generate(&d).await.unwrap()[0];
            let p: SecurityContext = l.label.parse().unwrap();
            let i: SecurityContext = l.imagelabel.as_deref().unwrap().parse().unwrap();
            let case = format!("{manager} {virt} tcg={tcg_line:?}: {} / {}", l.label, i);
            assert_eq!(p.user, mgr.user, "{case}");
            assert_eq!(p.role, mgr.role, "{case}");
            assert_eq!(p.type_, want_type, "{case}");
            assert_eq!(i.user, mgr.user, "{case}");
            assert_eq!(i.role, "object_r", "{case}");
            assert_eq!(i.type_, "svirt_image_t", "{case}");
            assert_eq!(p.range, i.range, "{case}");
            let range = p.range.clone().unwrap();
            assert_eq!(range.low, range.high, "{case}");
            assert_eq!(range.low.sensitivity, sens, "{case}");
            let cats: Vec<u16> = range.low.categories.iter().collect();
            assert_eq!(cats.len(), 2, "{case}");
            assert!(cats.iter().all(|c| (lo..=hi).contains(c)), "{case}");
        }
    }
}

#[tokio::test]
async fn a_baselabel_gives_only_its_type_and_a_static_image_label_the_managers_user() {
    let r = rig_full(
        "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023",
        Some(TCG),
        HostPaths::default(),
    );
    let d = Domain::from_xml(
        "<domain type='qemu'><name>b</name><seclabel type='dynamic' model='selinux'>\
         <baselabel>system_u:system_r:svirt_custom_t:s0</baselabel></seclabel></domain>",
        "b.xml",
    )
    .unwrap();
    let l = &r.domains.manager().generate(&d).await.unwrap()[0];
    assert!(
        l.label
            .starts_with("unconfined_u:unconfined_r:svirt_custom_t:s0:c"),
        "{}",
        l.label
    );
    let d = Domain::from_xml(
        "<domain type='kvm'><name>s</name><seclabel type='static' model='selinux' relabel='yes'>\
         <label>system_u:system_r:svirt_t:s0:c10,c20</label>\
         <imagelabel>system_u:object_r:ignored_t:s0</imagelabel>\
         <baselabel>system_u:system_r:ignored_t:s0</baselabel></seclabel></domain>",
        "s.xml",
    )
    .unwrap();
    let l = &r.domains.manager().generate(&d).await.unwrap()[0];
    assert_eq!(l.label, "system_u:system_r:svirt_t:s0:c10,c20");
    assert_eq!(
        l.imagelabel.as_deref(),
        Some("unconfined_u:object_r:svirt_image_t:s0:c10,c20")
    );
}
