//! libvirt domain XML through the real `svirt` binary on real files, as root: `verify` prints the
//! plan (every resource with its label, every skipped one with why) and changes nothing; `start`
//! gives nvram, a connect-mode socket and a pipe's halves the image label, leaves a listen-mode
//! socket QEMU will create and a chain under relabel='no' alone, gives a readonly+shareable disk
//! the shared label; `stop` puts every label back and leaves no metadata.

use std::path::Path;

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
const CONTENT: &str = "system_u:object_r:virt_content_t:s0";
const SHARED: &str = "system_u:object_r:svirt_image_t:s0";

fn domain_xml(dir: &Path) -> String {
    let p = |n: &str| dir.join(n).display().to_string();
    format!(
        r#"<domain type='kvm'>
  <name>cli14</name>
  <uuid>14141414-0000-4000-8000-000000000014</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>{loader}</loader>
    <nvram>{nvram}</nvram></os>
  <devices>
    <disk type='file' device='disk'><source file='{top}'/>
      <backingStore type='file'><format type='qcow2'/><source file='{base}'/><backingStore/></backingStore>
      <target dev='vda'/></disk>
    <disk type='file' device='disk'><source file='{keep}'><seclabel model='selinux' relabel='no'/></source>
      <backingStore type='file'><source file='{keepbase}'/></backingStore><target dev='vdb'/></disk>
    <disk type='file' device='disk'><source file='{both}'/><readonly/><shareable/><target dev='vdc'/></disk>
    <serial type='unix'><source mode='connect' path='{connect}'/></serial>
    <channel type='unix'><source mode='bind' path='{listen}'/><target type='virtio'/></channel>
    <serial type='pipe'><source path='{pipe}'/></serial>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
</domain>"#,
        loader = p("loader.fd"),
        nvram = p("VARS.fd"),
        top = p("top.qcow2"),
        base = p("base.qcow2"),
        keep = p("keep.qcow2"),
        keepbase = p("keepbase.qcow2"),
        both = p("both.img"),
        connect = p("connect.sock"),
        listen = p("listen.sock"),
        pipe = p("pipe"),
    )
}

fn set_orig(p: &Path) {
    rustix::fs::lsetxattr(
        p,
        "security.selinux",
        ORIG.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn libvirt_xml_verify_start_stop_on_real_files() {
    if !root_or_skip("libvirt_xml_verify_start_stop_on_real_files") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    let files = [
        "loader.fd",
        "VARS.fd",
        "top.qcow2",
        "base.qcow2",
        "keep.qcow2",
        "keepbase.qcow2",
        "both.img",
    ];
    for f in files {
        labeled_file(&d.path().join(f), "x", ORIG);
    }
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("connect.sock")).unwrap();
    set_orig(&d.path().join("connect.sock"));
    for half in ["pipe.in", "pipe.out"] {
        nix::unistd::mkfifo(
            &d.path().join(half),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        set_orig(&d.path().join(half));
    }
    let xml = d.path().join("cli14.xml");
    std::fs::write(&xml, domain_xml(d.path())).unwrap();
    let all: Vec<_> = files
        .iter()
        .chain(&["connect.sock", "pipe.in", "pipe.out"])
        .map(|f| d.path().join(f))
        .collect();

    // verify: the whole plan, nothing changed.
    let o = run(&cfg, &["--json", "verify", xml.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = v["plan"].as_array().unwrap();
    let entry = |name: &str| {
        let want = d.path().join(name).display().to_string();
        plan.iter()
            .find(|e| e["path"] == want.as_str())
            .unwrap_or_else(|| panic!("{name} not in the plan: {v:#}"))
            .clone()
    };
    assert!(entry("loader.fd")["skipped"]
        .as_str()
        .unwrap()
        .contains("loader"));
    assert!(entry("listen.sock")["skipped"]
        .as_str()
        .unwrap()
        .contains("listen"));
    assert!(entry("keepbase.qcow2")["skipped"]
        .as_str()
        .unwrap()
        .contains("relabel='no'"));
    assert_eq!(entry("base.qcow2")["label"], CONTENT);
    assert_eq!(entry("both.img")["label"], SHARED);
    assert!(entry("pipe.in")["label"]
        .as_str()
        .unwrap()
        .starts_with("system_u:object_r:svirt_image_t:s0:c"));
    for p in &all {
        assert_eq!(label(p), ORIG, "verify changed {}", p.display());
    }
    let text = run(&cfg, &["verify", xml.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("listen.sock skip: a listen-mode socket"),
        "{text}"
    );

    // start: libvirt's labels.
    let o = run(&cfg, &["--json", "start", xml.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let image = s["labels"][0]["imagelabel"].as_str().unwrap().to_owned();
    for (f, want) in [
        ("VARS.fd", image.as_str()),
        ("top.qcow2", image.as_str()),
        ("base.qcow2", CONTENT),
        ("keep.qcow2", ORIG),
        ("keepbase.qcow2", ORIG),
        ("both.img", SHARED),
        ("connect.sock", image.as_str()),
        ("pipe.in", image.as_str()),
        ("pipe.out", image.as_str()),
        ("loader.fd", ORIG),
    ] {
        assert_eq!(label(&d.path().join(f)), want, "{f}");
    }
    assert!(!d.path().join("listen.sock").exists());

    // stop: every original back, no metadata left.
    let o = run(&cfg, &["stop", "cli14"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for p in &all {
        assert_eq!(label(p), ORIG, "{} not restored", p.display());
        assert_eq!(svirt_xattrs(p), "", "{} keeps metadata", p.display());
    }
}
