//! The SELinux driver on the recording fake host: libvirt's resource table, remembered originals,
//! conflicts, stale metadata, refused xattrs, unlabelable filesystems, and safe walks.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use svirt_core::config::BuildContext;
use svirt_core::db::Db;
use svirt_core::domain::Domain;
use svirt_core::domains::{Domains, Record};
use svirt_core::host::fake::FakeHost;
use svirt_core::host::{fs_magic, FileKind};
use svirt_core::manager::SecurityManager;
use svirt_core::Error;
use svirt_selinux::{Contexts, Kernel, SelinuxDriver};

const ORIG: &str = "system_u:object_r:default_t:s0";
const CONTENT: &str = "system_u:object_r:virt_content_t:s0";
const SHARED: &str = "system_u:object_r:svirt_image_t:s0";

#[derive(Debug)]
struct NoKernel;
impl Kernel for NoKernel {
    fn mode(&self) -> Option<bool> {
        None
    }
    fn current_context(&self) -> std::io::Result<String> {
        Err(std::io::Error::from_raw_os_error(libc_einval()))
    }
    fn check_context(&self, _ctx: &str) -> Option<bool> {
        None
    }
}
fn libc_einval() -> i32 {
    22
}

struct Rig {
    host: Arc<FakeHost>,
    domains: Domains,
    _dir: tempfile::TempDir,
}

fn rig_with(host: Arc<FakeHost>, range: &str) -> Rig {
    rig_fc(host, range, None)
}

fn rig_fc(host: Arc<FakeHost>, range: &str, file_contexts: Option<std::path::PathBuf>) -> Rig {
    rig_driver(host, range, file_contexts, None)
}

/// A rig over the fake host: offline, or in kernel mode with `kernel`.
fn rig_driver(
    host: Arc<FakeHost>,
    range: &str,
    file_contexts: Option<std::path::PathBuf>,
    kernel: Option<Arc<dyn Kernel>>,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let contexts = Contexts {
        manager: format!("system_u:system_r:virtd_t:{range}")
            .parse()
            .unwrap(),
        domain: "system_u:system_r:svirt_t:s0".parse().unwrap(),
        tcg: None,
        image: SHARED.parse().unwrap(),
        content: CONTENT.parse().unwrap(),
    };
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let ctx = BuildContext::new(dir.path().to_owned(), host.clone(), db.clone());
    let offline = kernel.is_none();
    let kernel = kernel.unwrap_or_else(|| Arc::new(NoKernel));
    let driver =
        SelinuxDriver::with_file_contexts(offline, contexts, kernel, &ctx, file_contexts).unwrap();
    let manager = SecurityManager::new(vec![Arc::new(driver)], false).unwrap();
    Rig {
        domains: Domains::new(manager, host.clone(), db, dir.path(), None),
        host,
        _dir: dir,
    }
}

fn rig() -> Rig {
    rig_with(Arc::new(FakeHost::new()), "s0-s0:c0.c1023")
}

impl Rig {
    fn file(&self, p: &str) {
        self.host.add_file(p);
        self.host
            .put_xattr(p, "security.selinux", format!("{ORIG}\0").as_bytes());
    }
    async fn start(&self, toml: &str) -> Result<Record, Error> {
        let d = Domain::from_toml(toml, "t")?;
        self.domains.start(d).await
    }
    async fn stop(&self, rec: &Record) {
        self.domains.stop(&rec.domain.name).await.unwrap();
    }
    fn label(&self, p: &str) -> String {
        self.host.label(p).unwrap_or_default()
    }
    fn svirt_xattrs(&self, root: &str) -> Vec<String> {
        self.host
            .paths_under(root)
            .iter()
            .flat_map(|p| {
                self.host
                    .xattr_names(&p.to_string_lossy())
                    .into_iter()
                    .filter(|n| n.contains("svirt"))
                    .map(move |n| format!("{} {n}", p.display()))
            })
            .collect()
    }
}

#[tokio::test]
async fn every_row_of_the_resource_table() {
    let r = rig();
    for f in [
        "/img/top.qcow2",
        "/img/base.qcow2",
        "/img/shared.img",
        "/img/cd.iso",
        "/img/keep.img",
        "/img/custom.img",
        "/boot2/vmlinuz",
        "/boot2/initrd",
        "/boot2/dtb",
        "/run2/vm.sock",
        "/srv/share/a",
        "/srv/share/sub/b",
        "/vtpm/state",
    ] {
        r.file(f);
    }
    r.host
        .add(Path::new("/dev/vfio/12"), FileKind::Char, 0, 0, 0o600);
    r.host.put_xattr(
        "/dev/vfio/12",
        "security.selinux",
        b"system_u:object_r:vfio_device_t:s0\0",
    );
    let vm = r
        .start(
            "name='vm'\nkernel='/boot2/vmlinuz'\ninitrd='/boot2/initrd'\ndtb='/boot2/dtb'\n\
             [[disk]]\npath='/img/top.qcow2'\nbacking=['/img/base.qcow2']\n\
             [[disk]]\npath='/img/shared.img'\nshareable=true\n\
             [[disk]]\npath='/img/cd.iso'\nreadonly=true\n\
             [[disk]]\npath='/img/keep.img'\n[[disk.seclabel]]\nmodel='selinux'\nrelabel=false\n\
             [[disk]]\npath='/img/custom.img'\n[[disk.seclabel]]\nmodel='selinux'\nlabel='system_u:object_r:public_content_t:s0'\n\
             [[chardev]]\npath='/run2/vm.sock'\n[[hostdev]]\npath='/dev/vfio/12'\n[[filesystem]]\npath='/srv/share'\n[[tpm]]\npath='/vtpm'\n",
        )
        .await
        .unwrap();
    let image = vm.labels[0].imagelabel.clone().unwrap();
    assert!(
        image.starts_with("system_u:object_r:svirt_image_t:s0:c"),
        "{image}"
    );
    assert!(vm.labels[0]
        .label
        .starts_with("system_u:system_r:svirt_t:s0:c"));
    for (p, want) in [
        ("/img/top.qcow2", image.as_str()),
        ("/img/base.qcow2", CONTENT),
        ("/img/shared.img", SHARED),
        ("/img/cd.iso", CONTENT),
        ("/img/keep.img", ORIG),
        ("/img/custom.img", "system_u:object_r:public_content_t:s0"),
        ("/boot2/vmlinuz", CONTENT),
        ("/boot2/initrd", CONTENT),
        ("/boot2/dtb", CONTENT),
        ("/run2/vm.sock", image.as_str()),
        ("/dev/vfio/12", image.as_str()),
        ("/srv/share", image.as_str()),
        ("/srv/share/a", image.as_str()),
        ("/srv/share/sub/b", image.as_str()),
        ("/vtpm/state", image.as_str()),
    ] {
        assert_eq!(r.label(p), want, "{p}");
    }
    r.stop(&vm).await;
    for p in [
        "/img/top.qcow2",
        "/img/base.qcow2",
        "/img/shared.img",
        "/img/cd.iso",
        "/img/custom.img",
        "/boot2/vmlinuz",
        "/srv/share/a",
        "/srv/share/sub/b",
        "/vtpm/state",
    ] {
        assert_eq!(r.label(p), ORIG, "{p} restored");
    }
    assert_eq!(
        r.label("/dev/vfio/12"),
        "system_u:object_r:vfio_device_t:s0"
    );
    assert_eq!(
        r.label("/srv/share"),
        "",
        "a directory without a label gets none back"
    );
    assert!(r.svirt_xattrs("/").is_empty(), "{:?}", r.svirt_xattrs("/"));
    assert!(
        !r.host
            .calls()
            .iter()
            .any(|c| c.contains("/img/keep.img") && c.starts_with("set_xattr")),
        "relabel=false was touched"
    );
}

#[tokio::test]
async fn a_shared_file_is_restored_only_when_its_last_user_stops() {
    let r = rig();
    for f in ["/img/shared.img", "/img/a.img", "/img/b.img"] {
        r.file(f);
    }
    let a = r.start("name='a'\n[[disk]]\npath='/img/a.img'\n[[disk]]\npath='/img/shared.img'\nshareable=true\n").await.unwrap();
    let b = r.start("name='b'\n[[disk]]\npath='/img/b.img'\n[[disk]]\npath='/img/shared.img'\nshareable=true\n").await.unwrap();
    // One mark holds the original for both; the holders are counted in the state database.
    assert_eq!(
        r.host
            .xattr("/img/shared.img", "trusted.svirt.selinux")
            .as_deref(),
        Some(format!("={ORIG}\0").as_bytes().strip_suffix(b"\0").unwrap())
    );
    let held = r.domains.status(None).await.unwrap();
    assert_eq!(held.len(), 2);
    r.stop(&a).await;
    assert_eq!(r.label("/img/shared.img"), SHARED, "b still uses it");
    assert_eq!(r.label("/img/a.img"), ORIG);
    r.stop(&b).await;
    assert_eq!(r.label("/img/shared.img"), ORIG);
    assert!(r.svirt_xattrs("/").is_empty());
}

#[tokio::test]
async fn a_private_disk_of_a_running_vm_is_refused_naming_both() {
    let r = rig();
    r.file("/img/a.img");
    let _a = r
        .start("name='first'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    let before = r.label("/img/a.img");
    let e = r
        .start("name='second'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap_err();
    let text = svirt_core::display_chain(&e);
    assert!(
        text.contains("first") && text.contains("second") && text.contains("shareable"),
        "{text}"
    );
    assert_eq!(
        r.label("/img/a.img"),
        before,
        "the refused start changed nothing"
    );
    let e = r
        .start("name='third'\n[[disk]]\npath='/img/a.img'\nshareable=true\n")
        .await
        .unwrap_err();
    assert!(svirt_core::display_chain(&e).contains("first"));
}

#[tokio::test]
async fn stale_metadata_after_a_reboot_never_blocks_a_start_and_keeps_the_true_original() {
    let r = rig();
    r.file("/img/a.img");
    let crashed = r
        .start("name='crashed'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    let crashed_label = r.label("/img/a.img");
    assert_ne!(crashed_label, ORIG);
    // The host reboots: `crashed` never stopped; its label and metadata are still on the file.
    r.host.set_boot_id("boot-2");
    let next = r
        .start("name='next'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    r.stop(&next).await;
    assert_eq!(
        r.label("/img/a.img"),
        ORIG,
        "restored to the original, not to the crashed VM's label"
    );
    assert!(r.svirt_xattrs("/").is_empty());
    drop(crashed);
}

#[tokio::test]
async fn after_a_reboot_that_wiped_the_journal_the_xattrs_still_hold_the_original() {
    let host = Arc::new(FakeHost::new());
    host.add_file("/img/a.img");
    host.put_xattr(
        "/img/a.img",
        "security.selinux",
        format!("{ORIG}\0").as_bytes(),
    );
    {
        let r = rig_with(host.clone(), "s0-s0:c0.c1023");
        r.start("name='crashed'\n[[disk]]\npath='/img/a.img'\n")
            .await
            .unwrap();
    } // the state dir (like /run) is gone
    host.set_boot_id("boot-2");
    let r = rig_with(host.clone(), "s0-s0:c0.c1023");
    let next = r
        .start("name='next'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    r.stop(&next).await;
    assert_eq!(r.label("/img/a.img"), ORIG);
}

#[tokio::test]
async fn a_dead_vms_label_nothing_remembers_is_never_taken_as_the_original() {
    // A reboot wiped the journal, and the kernel refuses trusted.* xattrs: all that is left is
    // the dead VM's label on the file. Stop must put back the policy default, not that label.
    let fc_dir = tempfile::tempdir().unwrap();
    let fc = fc_dir.path().join("file_contexts");
    std::fs::write(&fc, "/img(/.*)?\tsystem_u:object_r:virt_image_t:s0\n").unwrap();
    let host = Arc::new(FakeHost::new());
    host.fail_xattr("set_xattr", "trusted.", 1);
    for (p, l) in [
        ("/img/a.img", "system_u:object_r:svirt_image_t:s0:c3,c4"),
        ("/other/b.img", "system_u:object_r:svirt_image_t:s0:c5,c6"),
        ("/img/c.img", ORIG),
    ] {
        host.add_file(p);
        host.put_xattr(p, "security.selinux", format!("{l}\0").as_bytes());
    }
    let r = rig_fc(host, "s0-s0:c0.c1023", Some(fc));
    let vm = r.start("name='n'\n[[disk]]\npath='/img/a.img'\n[[disk]]\npath='/other/b.img'\n[[disk]]\npath='/img/c.img'\n").await.unwrap();
    r.stop(&vm).await;
    assert_eq!(
        r.label("/img/a.img"),
        "system_u:object_r:virt_image_t:s0",
        "policy default"
    );
    assert_eq!(
        r.label("/other/b.img"),
        CONTENT,
        "no policy default: the content context"
    );
    assert_eq!(
        r.label("/img/c.img"),
        ORIG,
        "an ordinary label is the original"
    );
}

#[tokio::test]
async fn refused_trusted_xattrs_leave_the_journal_to_remember() {
    let r = rig();
    r.file("/img/a.img");
    r.host.fail_xattr("set_xattr", "trusted.", 1); // EPERM, as in containers
    let vm = r
        .start("name='c'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    assert!(r.label("/img/a.img").contains("svirt_image_t:s0:c"));
    assert!(
        r.host
            .calls()
            .iter()
            .any(|c| c.starts_with("set_xattr /img/a.img trusted.svirt.")),
        "the xattr was tried"
    );
    assert!(r.svirt_xattrs("/").is_empty(), "and refused");
    r.stop(&vm).await;
    assert_eq!(r.label("/img/a.img"), ORIG);
    assert!(r.svirt_xattrs("/").is_empty());
}

#[tokio::test]
async fn an_nfs_file_is_skipped_with_the_boolean_named_and_left_untouched() {
    let r = rig();
    r.host.add_file("/nfs/vm.img");
    r.host.set_fs_type("/nfs", fs_magic::NFS);
    r.host.fail("set_xattr", "/nfs", 95, None); // EOPNOTSUPP
    let vm = r
        .start("name='n'\n[[disk]]\npath='/nfs/vm.img'\n")
        .await
        .unwrap();
    let reports = &vm.resources;
    assert!(reports[0].skipped, "{reports:?}");
    assert!(
        reports[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("virt_use_nfs"),
        "{reports:?}"
    );
    assert_eq!(r.label("/nfs/vm.img"), "");
    r.stop(&vm).await;
    assert!(r.svirt_xattrs("/").is_empty());
}

#[tokio::test]
async fn a_directory_swapped_for_a_symlink_mid_walk_does_not_redirect_the_relabel() {
    let r = rig();
    for f in ["/srv/share/a", "/srv/share/sub/b", "/etc/passwd"] {
        r.file(f);
    }
    r.host.swap_before_open("/srv/share/sub", "/etc");
    let vm = r
        .start("name='w'\n[[filesystem]]\npath='/srv/share'\n")
        .await
        .unwrap();
    assert_eq!(r.label("/etc/passwd"), ORIG);
    let calls = r.host.calls();
    assert!(
        calls.iter().any(|c| c == "open_child_data /srv/share/sub"),
        "the walk reached the swapped entry: {calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("set_xattr /etc")),
        "{calls:?}"
    );
    assert!(r.label("/srv/share/a").contains("svirt_image_t"));
    r.stop(&vm).await;
    assert_eq!(r.label("/srv/share/a"), ORIG);
}

#[tokio::test]
async fn system_paths_are_refused_directly_and_through_symlinks() {
    let r = rig();
    r.file("/etc/shadow");
    r.host.add_symlink("/img/evil.img", "/etc/shadow");
    for p in ["/etc/shadow", "/img/evil.img"] {
        let e = r
            .start(&format!("name='x'\n[[disk]]\npath='{p}'\n"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::RolledBack { ref source, .. } if matches!(**source, Error::PathRefused { .. }))
                || matches!(e, Error::PathRefused { .. }),
            "{p}: {e}"
        );
    }
    assert_eq!(r.label("/etc/shadow"), ORIG);
}

#[tokio::test]
async fn a_failed_start_rolls_back_the_files_already_labeled() {
    let r = rig();
    r.file("/img/a.img");
    r.file("/img/b.img");
    r.host.fail("set_xattr", "/img/b.img", 5, None); // EIO: a real failure, not "unsupported"
    let e = r
        .start("name='r'\n[[disk]]\npath='/img/a.img'\n[[disk]]\npath='/img/b.img'\n")
        .await
        .unwrap_err();
    assert!(svirt_core::display_chain(&e).contains("/img/b.img"), "{e}");
    assert_eq!(r.label("/img/a.img"), ORIG, "a.img rolled back");
    assert!(r.svirt_xattrs("/").is_empty());
}

#[tokio::test]
async fn static_labels_are_reserved_untouched_by_default_and_validated() {
    let r = rig_with(Arc::new(FakeHost::new()), "s0-s0:c0.c7");
    r.file("/img/s.img");
    let st = r
        .start("name='mls'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='system_u:system_r:svirt_t:s0:c0,c1'\n[[disk]]\npath='/img/s.img'\n")
        .await
        .unwrap();
    assert_eq!(st.labels[0].label, "system_u:system_r:svirt_t:s0:c0,c1");
    assert_eq!(
        r.label("/img/s.img"),
        ORIG,
        "relabel defaults to no for static labels"
    );
    let mut seen = Vec::new();
    for i in 0..27 {
        let d = r.start(&format!("name='d{i}'\n")).await.unwrap();
        assert_ne!(d.labels[0].label, "system_u:system_r:svirt_t:s0:c0,c1");
        seen.push(d);
    }
    assert!(matches!(
        r.start("name='d28'\n").await,
        Err(Error::RolledBack { .. }) | Err(Error::LabelsExhausted { .. })
    ));
    let dup = r.start("name='mls2'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='system_u:system_r:svirt_t:s0:c0,c1'\n").await;
    assert!(svirt_core::display_chain(&dup.unwrap_err()).contains("mls"));
    let outside = r.start("name='hi'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='system_u:system_r:svirt_t:s3:c0,c1'\n").await;
    assert!(
        svirt_core::display_chain(&outside.unwrap_err()).contains("outside the manager's range")
    );
    r.stop(&st).await;
    let back = r.start("name='after'\n").await.unwrap();
    assert_eq!(
        back.labels[0].label, "system_u:system_r:svirt_t:s0:c0,c1",
        "released static pair is the only free one"
    );
}

#[tokio::test]
async fn a_static_label_with_relabel_uses_its_imagelabel() {
    let r = rig_with(Arc::new(FakeHost::new()), "s0-s3:c0.c1023");
    r.file("/img/m.img");
    let vm = r
        .start("name='m'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nrelabel=true\nlabel='system_u:system_r:svirt_t:s2-s3:c0.c1023'\n[[disk]]\npath='/img/m.img'\n")
        .await
        .unwrap();
    assert_eq!(
        r.label("/img/m.img"),
        "system_u:object_r:svirt_image_t:s2-s3:c0.c1023"
    );
    r.stop(&vm).await;
    assert_eq!(r.label("/img/m.img"), ORIG);
}

#[derive(Debug, Clone)]
struct Use {
    file: usize,
    mode: u8, // 0 private, 1 shareable, 2 readonly, 3 relabel=false
}

fn arb_domain() -> impl Strategy<Value = Vec<Use>> {
    prop::collection::vec((0usize..6, 0u8..4), 0..5).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(f, _)| seen.insert(*f))
            .map(|(file, mode)| Use { file, mode })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// For random domains over a pool of files (some labeled, some not, some shared between
    /// domains), starting them all and stopping them all leaves every label as it was and no
    /// svirt metadata, whatever starts are refused on the way.
    #[test]
    fn set_all_then_restore_all_is_the_identity(domains in prop::collection::vec(arb_domain(), 1..4), labeled in prop::collection::vec(any::<bool>(), 6)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let r = rig();
            for (i, l) in labeled.iter().enumerate() {
                let p = format!("/pool/f{i}.img");
                r.host.add_file(&p);
                if *l { r.host.put_xattr(&p, "security.selinux", format!("{ORIG}\0").as_bytes()); }
            }
            let before: Vec<String> = (0..6).map(|i| r.label(&format!("/pool/f{i}.img"))).collect();
            let mut running = Vec::new();
            for (n, uses) in domains.iter().enumerate() {
                let mut toml = format!("name='d{n}'\n");
                for u in uses {
                    toml.push_str(&format!("[[disk]]\npath='/pool/f{}.img'\n", u.file));
                    match u.mode {
                        1 => toml.push_str("shareable=true\n"),
                        2 => toml.push_str("readonly=true\n"),
                        3 => toml.push_str("[[disk.seclabel]]\nmodel='selinux'\nrelabel=false\n"),
                        _ => {}
                    }
                }
                if let Ok(vm) = r.start(&toml).await { running.push(vm); }
            }
            for vm in running.iter().rev() { r.stop(vm).await; }
            let after: Vec<String> = (0..6).map(|i| r.label(&format!("/pool/f{i}.img"))).collect();
            prop_assert_eq!(after, before);
            prop_assert!(r.svirt_xattrs("/").is_empty());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn reserve_after_a_restart_checks_the_live_process_label() {
    let r = rig_with(Arc::new(FakeHost::new()), "s0-s0:c0.c7");
    r.file("/img/a.img");
    let vm = r
        .start("name='live'\n[[disk]]\npath='/img/a.img'\n")
        .await
        .unwrap();
    let label = vm.labels[0].label.clone();
    r.host.add_process(4242, &label, 0, 0);
    r.domains
        .manager()
        .reserve(&vm.domain, &vm.labels, Some(4242))
        .await
        .unwrap();
    // A live label that is surely not the recorded one (the pair is drawn at random).
    let other = if label.ends_with(":c6,c7") {
        "system_u:system_r:svirt_t:s0:c5,c7"
    } else {
        "system_u:system_r:svirt_t:s0:c6,c7"
    };
    r.host.add_process(4343, other, 0, 0);
    // The offline rig does not read process labels; a kernel-mode driver does.
    let kernel = rig_kernel(r.host.clone());
    let e = kernel
        .domains
        .manager()
        .reserve(&vm.domain, &vm.labels, Some(4343))
        .await
        .unwrap_err();
    assert!(
        svirt_core::display_chain(&e).contains(&format!("runs as {other}")),
        "{e}"
    );
    kernel
        .domains
        .manager()
        .reserve(&vm.domain, &vm.labels, Some(4242))
        .await
        .unwrap();
}

#[derive(Debug)]
struct EnforcingKernel;
impl Kernel for EnforcingKernel {
    fn mode(&self) -> Option<bool> {
        Some(true)
    }
    fn current_context(&self) -> std::io::Result<String> {
        Ok("system_u:system_r:virtd_t:s0-s0:c0.c7".into())
    }
    fn check_context(&self, _ctx: &str) -> Option<bool> {
        Some(true)
    }
}

/// A driver in kernel mode (not offline) over the fake host.
fn rig_kernel(host: Arc<FakeHost>) -> Rig {
    rig_driver(host, "s0-s0:c0.c7", None, Some(Arc::new(EnforcingKernel)))
}
