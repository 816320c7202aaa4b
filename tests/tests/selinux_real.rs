//! The SELinux driver (offline mode) on real files, as root: real `security.selinux` and
//! `trusted.svirt.*` xattrs on this host's filesystem, through the real LinuxHost.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use svirt_core::config::BuildContext;
use svirt_core::db::Db;
use svirt_core::domain::Domain;
use svirt_core::domains::{Domains, Record};
use svirt_core::host::{FileKind, FileMeta, Host, LinuxHost, Node};
use svirt_core::manager::SecurityManager;
use svirt_selinux::{Contexts, LibSelinux, SelinuxDriver};
use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
const CONTENT: &str = "system_u:object_r:virt_content_t:s0";
const SHARED: &str = "system_u:object_r:svirt_image_t:s0";

fn manager(host: Arc<dyn Host>, state: &Path) -> Domains {
    let contexts = Contexts {
        manager: "system_u:system_r:virtd_t:s0-s0:c0.c1023".parse().unwrap(),
        domain: "system_u:system_r:svirt_t:s0".parse().unwrap(),
        tcg: None,
        image: SHARED.parse().unwrap(),
        content: CONTENT.parse().unwrap(),
    };
    let db = Arc::new(Db::open(state).unwrap());
    let ctx = BuildContext::new(state.to_owned(), host.clone(), db.clone());
    let d = SelinuxDriver::with_file_contexts(true, contexts, Arc::new(LibSelinux), &ctx, None)
        .unwrap();
    let m = SecurityManager::new(vec![Arc::new(d)], false).unwrap();
    Domains::new(m, host, db, state, None)
}

async fn start(m: &Domains, toml: &str) -> svirt_core::Result<Record> {
    m.start(Domain::from_toml(toml, "t")?).await
}

async fn stop(m: &Domains, rec: &Record) {
    m.stop(&rec.domain.name).await.unwrap();
}

fn orig(p: &Path) {
    if !p.exists() {
        std::fs::write(p, "x").unwrap();
    }
    rustix::fs::lsetxattr(
        p,
        "security.selinux",
        format!("{ORIG}\0").as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[tokio::test]
async fn every_row_of_the_resource_table_on_real_files() {
    if !root_or_skip("every_row_of_the_resource_table_on_real_files") {
        return;
    }
    let d = tmp();
    let p = |n: &str| d.path().join(n);
    for f in [
        "top.qcow2",
        "base.qcow2",
        "shared.img",
        "cd.iso",
        "keep.img",
        "custom.img",
        "vmlinuz",
        "initrd",
        "dtb",
    ] {
        orig(&p(f));
    }
    std::fs::create_dir_all(p("share/sub")).unwrap();
    std::fs::create_dir_all(p("tpm")).unwrap();
    for f in [
        "share",
        "share/sub",
        "share/a",
        "share/sub/b",
        "tpm",
        "tpm/state",
    ] {
        orig(&p(f));
    }
    let _sock = std::os::unix::net::UnixListener::bind(p("vm.sock")).unwrap();
    orig(&p("vm.sock"));
    nix::sys::stat::mknod(
        &p("vfio12"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        // A device number of no shared host device (the null device 1:3 is never relabeled).
        nix::sys::stat::makedev(243, 12),
    )
    .unwrap();
    orig(&p("vfio12"));
    let all = [
        "top.qcow2",
        "base.qcow2",
        "shared.img",
        "cd.iso",
        "keep.img",
        "custom.img",
        "vmlinuz",
        "initrd",
        "dtb",
        "share",
        "share/sub",
        "share/a",
        "share/sub/b",
        "tpm",
        "tpm/state",
        "vm.sock",
        "vfio12",
    ];
    let m = manager(Arc::new(LinuxHost::default()), &p("state"));
    let x = |n: &str| p(n).display().to_string();
    let vm = start(
        &m,
        &format!(
            "name='vm'\nkernel='{}'\ninitrd='{}'\ndtb='{}'\n[[disk]]\npath='{}'\nbacking=['{}']\n[[disk]]\npath='{}'\nshareable=true\n\
             [[disk]]\npath='{}'\nreadonly=true\n[[disk]]\npath='{}'\n[[disk.seclabel]]\nmodel='selinux'\nrelabel=false\n\
             [[disk]]\npath='{}'\n[[disk.seclabel]]\nmodel='selinux'\nlabel='system_u:object_r:public_content_t:s0'\n\
             [[chardev]]\npath='{}'\n[[hostdev]]\npath='{}'\n[[filesystem]]\npath='{}'\n[[tpm]]\npath='{}'\n",
            x("vmlinuz"), x("initrd"), x("dtb"), x("top.qcow2"), x("base.qcow2"), x("shared.img"), x("cd.iso"), x("keep.img"),
            x("custom.img"), x("vm.sock"), x("vfio12"), x("share"), x("tpm")
        ),
    )
    .await
    .unwrap();
    let image = vm.labels[0].imagelabel.clone().unwrap();
    for (f, want) in [
        ("top.qcow2", image.as_str()),
        ("base.qcow2", CONTENT),
        ("shared.img", SHARED),
        ("cd.iso", CONTENT),
        ("keep.img", ORIG),
        ("custom.img", "system_u:object_r:public_content_t:s0"),
        ("vmlinuz", CONTENT),
        ("initrd", CONTENT),
        ("dtb", CONTENT),
        ("vm.sock", image.as_str()),
        ("vfio12", image.as_str()),
        ("share", image.as_str()),
        ("share/sub", image.as_str()),
        ("share/sub/b", image.as_str()),
        ("tpm/state", image.as_str()),
    ] {
        assert_eq!(label(&p(f)), want, "{f}");
    }
    assert!(
        !svirt_xattrs(&p("top.qcow2")).is_empty(),
        "remembered in trusted.svirt.* too"
    );
    stop(&m, &vm).await;
    for f in all {
        assert_eq!(label(&p(f)), ORIG, "{f} restored");
        assert_eq!(svirt_xattrs(&p(f)), "", "{f}: no metadata left");
    }
}

#[tokio::test]
async fn a_real_shared_file_is_restored_when_its_last_user_stops() {
    if !root_or_skip("a_real_shared_file_is_restored_when_its_last_user_stops") {
        return;
    }
    let d = tmp();
    let s = d.path().join("shared.img");
    orig(&s);
    let m = manager(Arc::new(LinuxHost::default()), &d.path().join("state"));
    let dom = |n: &str| {
        format!(
            "name='{n}'\n[[disk]]\npath='{}'\nshareable=true\n",
            s.display()
        )
    };
    let a = start(&m, &dom("a")).await.unwrap();
    let b = start(&m, &dom("b")).await.unwrap();
    // One mark holds the original for both users; the holders are counted in the database.
    assert_eq!(
        svirt_xattrs(&s),
        format!("trusted.svirt.selinux=\"={ORIG}\""),
        "{}",
        svirt_xattrs(&s)
    );
    stop(&m, &a).await;
    assert_eq!(label(&s), SHARED, "b still uses it");
    stop(&m, &b).await;
    assert_eq!(label(&s), ORIG);
    assert_eq!(svirt_xattrs(&s), "");
}

#[tokio::test]
async fn after_a_simulated_reboot_stale_metadata_neither_blocks_nor_becomes_the_original() {
    if !root_or_skip(
        "after_a_simulated_reboot_stale_metadata_neither_blocks_nor_becomes_the_original",
    ) {
        return;
    }
    let d = tmp();
    let img = d.path().join("a.img");
    orig(&img);
    let boot = d.path().join("boot_id");
    std::fs::write(&boot, "boot-before\n").unwrap();
    let host = || -> Arc<dyn Host> { Arc::new(LinuxHost::default().with_boot_id_file(&boot)) };
    let m = manager(host(), &d.path().join("state"));
    let _crashed = start(
        &m,
        &format!("name='crashed'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .unwrap();
    assert_ne!(label(&img), ORIG);
    // Reboot: a new boot id, and /run (the state dir) is empty again.
    std::fs::write(&boot, "boot-after\n").unwrap();
    let m = manager(host(), &d.path().join("state-after-reboot"));
    let next = start(
        &m,
        &format!("name='next'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .unwrap();
    stop(&m, &next).await;
    assert_eq!(
        label(&img),
        ORIG,
        "the original from before the crash, not the crashed VM's label"
    );
    assert_eq!(svirt_xattrs(&img), "");

    // The same, with a state directory that survives reboots: the journal still names the dead
    // VM as the holder. Only the boot id tells that it is dead; the start must not be blocked.
    let keep = d.path().join("kept-state");
    std::fs::write(&boot, "boot-one\n").unwrap();
    let m = manager(host(), &keep);
    let _dead = start(
        &m,
        &format!("name='dead'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .unwrap();
    std::fs::write(&boot, "boot-two\n").unwrap();
    let m = manager(host(), &keep);
    let alive = start(
        &m,
        &format!("name='alive'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .expect("metadata from an earlier boot must not block a start");
    stop(&m, &alive).await;
    assert_eq!(label(&img), ORIG);
    // Within one boot the same journal entry does block: the VM may still be running.
    let _one = start(
        &m,
        &format!("name='one'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .unwrap();
    let e = start(
        &m,
        &format!("name='two'\n[[disk]]\npath='{}'\n", img.display()),
    )
    .await
    .unwrap_err();
    assert!(
        svirt_core::display_chain(&e).contains("in use by domain one"),
        "{e}"
    );
}

/// The real host, but just before the walk opens `path`, the directory there is moved away and
/// a symlink to `target` put in its place: a race, made exact, on the real filesystem.
#[derive(Debug)]
struct Swapping {
    real: LinuxHost,
    swap: Mutex<Option<(PathBuf, PathBuf)>>,
}

impl Swapping {
    fn maybe_swap(&self, path: &Path) {
        let mut g = self.swap.lock().unwrap();
        if g.as_ref().is_some_and(|(p, _)| p == path) {
            let (p, target) = g.take().unwrap();
            std::fs::rename(&p, p.with_extension("moved")).unwrap();
            std::os::unix::fs::symlink(&target, &p).unwrap();
        }
    }
}

impl Host for Swapping {
    fn lstat(&self, p: &Path) -> io::Result<FileMeta> {
        self.real.lstat(p)
    }
    fn stat(&self, p: &Path) -> io::Result<FileMeta> {
        self.real.stat(p)
    }
    fn read_link(&self, p: &Path) -> io::Result<PathBuf> {
        self.real.read_link(p)
    }
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        self.real.canonicalize(p)
    }
    fn open_node(&self, p: &Path) -> io::Result<Node> {
        self.real.open_node(p)
    }
    fn open_resolved(&self, p: &Path) -> io::Result<Node> {
        self.real.open_resolved(p)
    }
    fn node_path(&self, n: &Node) -> io::Result<PathBuf> {
        self.real.node_path(n)
    }
    fn open_child(&self, d: &Node, n: &OsStr) -> io::Result<Node> {
        self.maybe_swap(&d.path().join(n));
        self.real.open_child(d, n)
    }
    fn open_child_data(&self, d: &Node, n: &OsStr) -> io::Result<Node> {
        self.maybe_swap(&d.path().join(n));
        self.real.open_child_data(d, n)
    }
    fn meta(&self, n: &Node) -> io::Result<FileMeta> {
        self.real.meta(n)
    }
    fn list_dir(&self, d: &Node) -> io::Result<Vec<(OsString, Option<FileKind>)>> {
        self.real.list_dir(d)
    }
    fn get_xattr(&self, n: &Node, k: &str) -> io::Result<Option<Vec<u8>>> {
        self.real.get_xattr(n, k)
    }
    fn set_xattr(&self, n: &Node, k: &str, v: &[u8]) -> io::Result<()> {
        self.real.set_xattr(n, k, v)
    }
    fn remove_xattr(&self, n: &Node, k: &str) -> io::Result<()> {
        self.real.remove_xattr(n, k)
    }
    fn chown(&self, n: &Node, u: u32, g: u32) -> io::Result<()> {
        self.real.chown(n, u, g)
    }
    fn chmod(&self, n: &Node, m: u32) -> io::Result<()> {
        self.real.chmod(n, m)
    }
    fn fs_type(&self, n: &Node) -> io::Result<i64> {
        self.real.fs_type(n)
    }
    fn boot_id(&self) -> io::Result<String> {
        self.real.boot_id()
    }
    fn pid_alive(&self, p: u32) -> bool {
        self.real.pid_alive(p)
    }
    fn pid_label(&self, p: u32) -> io::Result<String> {
        self.real.pid_label(p)
    }
    fn pid_owner(&self, p: u32) -> io::Result<(u32, u32)> {
        self.real.pid_owner(p)
    }

    fn pid_creds(&self, p: u32) -> io::Result<svirt_core::host::ProcCreds> {
        self.real.pid_creds(p)
    }
    fn pids(&self) -> io::Result<Vec<u32>> {
        self.real.pids()
    }
    fn hold_uids(&self, uids: &[u32]) -> io::Result<()> {
        self.real.hold_uids(uids)
    }
    fn continue_as(&self, uids: &[u32], pids: &[u32]) -> io::Result<Vec<u32>> {
        self.real.continue_as(uids, pids)
    }
    fn handle(&self, n: &Node) -> io::Result<Option<Vec<u8>>> {
        self.real.handle(n)
    }
    fn open_by_handle(&self, m: &Node, h: &[u8]) -> io::Result<Node> {
        self.real.open_by_handle(m, h)
    }
    fn current_path(&self, n: &Node) -> io::Result<PathBuf> {
        self.real.current_path(n)
    }
}

#[tokio::test]
async fn a_real_symlink_swapped_in_mid_walk_does_not_redirect_the_relabel() {
    if !root_or_skip("a_real_symlink_swapped_in_mid_walk_does_not_redirect_the_relabel") {
        return;
    }
    let d = tmp();
    let share = d.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    for f in ["a", "sub/b"] {
        orig(&share.join(f));
    }
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let canary = outside.join("canary");
    orig(&canary);
    let host = Arc::new(Swapping {
        real: LinuxHost::default(),
        swap: Mutex::new(Some((share.join("sub"), outside.clone()))),
    });
    let m = manager(host.clone(), &d.path().join("state"));
    let vm = start(
        &m,
        &format!("name='w'\n[[filesystem]]\npath='{}'\n", share.display()),
    )
    .await
    .unwrap();
    assert!(
        host.swap.lock().unwrap().is_none(),
        "the swap happened during the walk"
    );
    assert!(std::fs::symlink_metadata(share.join("sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        label(&canary),
        ORIG,
        "nothing outside the tree was relabeled"
    );
    assert!(label(&share.join("a")).contains("svirt_image_t:s0:c"));
    stop(&m, &vm).await;
    assert_eq!(label(&share.join("a")), ORIG);
    assert_eq!(label(&canary), ORIG);
}

#[tokio::test]
async fn system_files_are_refused_directly_and_through_a_real_symlink() {
    if !root_or_skip("system_files_are_refused_directly_and_through_a_real_symlink") {
        return;
    }
    let d = tmp();
    let link = d.path().join("evil.img");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let before = label(Path::new("/etc/shadow"));
    let m = manager(Arc::new(LinuxHost::default()), &d.path().join("state"));
    for p in [Path::new("/etc/shadow"), link.as_path()] {
        let e = start(&m, &format!("name='x'\n[[disk]]\npath='{}'\n", p.display()))
            .await
            .unwrap_err();
        assert!(
            svirt_core::display_chain(&e).contains("refusing to relabel /etc/shadow"),
            "{e}"
        );
    }
    assert_eq!(label(Path::new("/etc/shadow")), before);
}
