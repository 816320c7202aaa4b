//! The DAC driver on libvirt-shaped XML over the fake host: what libvirt's `security_dac.c`
//! chowns (and which device seclabel governs it), in svirt's uid-per-VM model: private
//! resources to the VM's uid, resources several VMs may open to root and the shared group, the
//! loader and SGX nodes left alone, and stop putting every owner and mode back.

use std::path::Path;
use std::sync::Arc;

use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::db::Db;
use svirt_core::domain::Domain;
use svirt_core::domains::Domains;
use svirt_core::host::fake::FakeHost;
use svirt_core::host::FileKind;
use svirt_core::manager::SecurityManager;
use svirt_dac::DacConfig;

const XML: &str = r#"<domain type='kvm'>
  <name>dacvm</name>
  <os><type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
      <nvram>/vm/nvram/VARS.fd</nvram><kernel>/vm/boot/vmlinuz</kernel></os>
  <devices>
    <disk type='file'><source file='/vm/top.qcow2'/>
      <backingStore type='file'><source file='/vm/base.qcow2'/></backingStore></disk>
    <disk type='file'><source file='/vm/keep.qcow2'><seclabel model='dac' relabel='no'/></source>
      <backingStore type='file'><source file='/vm/keepbase.qcow2'/></backingStore></disk>
    <disk type='file'><source file='/vm/both.img'/><readonly/><shareable/></disk>
    <disk type='file'><source file='/vm/cd.iso'/><readonly/></disk>
    <hostdev mode='subsystem' type='usb'><source><address bus='2' device='3'/></source></hostdev>
    <input type='evdev'><source dev='/dev/input/event4'/></input>
    <memory model='sgx-epc'><target><size unit='KiB'>16384</size></target></memory>
    <serial type='unix'><source mode='bind' path='/vm/listen.sock'/></serial>
    <serial type='pipe'><source path='/vm/pipe'/></serial>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
</domain>"#;

#[tokio::test]
async fn dac_owners_follow_libvirts_rules_and_stop_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
    let group = dir.path().join("group");
    std::fs::write(&group, "root:x:0:\n").unwrap();
    let host = Arc::new(FakeHost::new());
    let files = [
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/vm/nvram/VARS.fd",
        "/vm/boot/vmlinuz",
        "/vm/top.qcow2",
        "/vm/base.qcow2",
        "/vm/keep.qcow2",
        "/vm/keepbase.qcow2",
        "/vm/both.img",
        "/vm/cd.iso",
    ];
    for f in files {
        host.add(Path::new(f), FileKind::File, 7, 7, 0o644);
    }
    for d in ["/dev/bus/usb/002/003", "/dev/input/event4", "/dev/sgx_vepc"] {
        host.add(Path::new(d), FileKind::Char, 7, 7, 0o644);
    }
    for f in ["/vm/pipe.in", "/vm/pipe.out"] {
        host.add(Path::new(f), FileKind::Fifo, 7, 7, 0o644);
    }
    let state = dir.path().join("state");
    let db = Arc::new(Db::open(&state).unwrap());
    let ctx = BuildContext::new(state.clone(), host.clone(), db.clone());
    let config = DacConfig {
        uid_range: "64000-64010".into(),
        shared_group: None,
        passwd,
        group,
        login_defs: dir.path().join("login.defs"),
        proc: "/proc".into(),
    };
    let driver = config.build(&ctx).unwrap();
    let manager = SecurityManager::new(vec![driver], false).unwrap();
    let domains = Domains::new(manager, host.clone(), db, &state, None);
    let d = Domain::from_xml(XML, "dacvm.xml").unwrap();
    let labels = domains.start(d.clone()).await.unwrap().labels;
    let uid: u32 = labels[0]
        .label
        .trim_start_matches('+')
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let shared = 64010;
    let private = Some((uid, uid, 0o600));
    let content = Some((0, shared, 0o440));
    for (p, want) in [
        ("/vm/top.qcow2", private),
        ("/vm/base.qcow2", content),
        ("/vm/keep.qcow2", Some((7, 7, 0o644))),
        ("/vm/keepbase.qcow2", Some((7, 7, 0o644))),
        ("/vm/both.img", Some((0, shared, 0o660))),
        ("/vm/cd.iso", content),
        ("/vm/nvram/VARS.fd", private),
        ("/vm/boot/vmlinuz", content),
        ("/dev/bus/usb/002/003", private),
        ("/dev/input/event4", private),
        ("/vm/pipe.in", private),
        ("/vm/pipe.out", private),
        ("/dev/sgx_vepc", Some((7, 7, 0o644))),
        ("/usr/share/OVMF/OVMF_CODE.fd", Some((7, 7, 0o644))),
    ] {
        assert_eq!(host.owner(p), want, "{p}");
    }
    let plan = domains.plan(&d).await.unwrap();
    let top = plan
        .iter()
        .find(|p| p.path == Path::new("/vm/top.qcow2"))
        .unwrap();
    assert_eq!(top.mode.as_deref(), Some("0600"));
    assert!(top.owner.is_some());
    assert!(plan
        .iter()
        .any(|p| p.path == Path::new("/vm/listen.sock") && p.skipped.is_some()));
    domains.stop("dacvm").await.unwrap();
    for p in files.iter().chain(&[
        "/dev/bus/usb/002/003",
        "/dev/input/event4",
        "/vm/pipe.in",
        "/vm/pipe.out",
    ]) {
        assert_eq!(host.owner(p), Some((7, 7, 0o644)), "{p} not restored");
    }
}
