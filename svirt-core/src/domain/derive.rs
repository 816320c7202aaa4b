//! Finding the host paths of resources the domain names only indirectly: VFIO groups through
//! sysfs `iommu_group`, USB and SCSI generic nodes, the TPM cancel file, swtpm's files, and
//! paths that may not exist yet (listen-mode sockets, pipe halves). Everything goes through the
//! [`Host`] seam, and every root is a [`HostPaths`] field, so tests give a fake sysfs and /dev.

use std::path::{Path, PathBuf};

use super::resources::{dedupe, Derive, Resource, ResourceKind};
use super::Domain;
use crate::error::{Error, Result};
use crate::host::Host;

/// The host directories resources are derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    /// sysfs (`/sys`).
    pub sysfs: PathBuf,
    /// The device directory (`/dev`).
    pub dev: PathBuf,
    /// libvirt's `swtpm_storage_dir`: emulator state, per domain uuid.
    pub swtpm_storage: PathBuf,
    /// libvirt's swtpm log directory.
    pub swtpm_log: PathBuf,
    /// Where libvirt's swtpm control sockets live.
    pub swtpm_run: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            swtpm_storage: "/var/lib/libvirt/swtpm".into(),
            swtpm_log: "/var/log/swtpm/libvirt/qemu".into(),
            swtpm_run: "/run/libvirt/qemu/swtpm".into(),
        }
    }
}

fn exists(host: &dyn Host, p: &Path) -> bool {
    host.lstat(p).is_ok()
}

/// `/dev/vfio/N` from the `iommu_group` link of a sysfs device directory
/// (libvirt's `virPCIDeviceAddressGetIOMMUGroupDev`, `virMediatedDeviceGetIOMMUGroupDev`).
fn vfio_group(host: &dyn Host, paths: &HostPaths, device_dir: PathBuf) -> Result<PathBuf> {
    let link = device_dir.join("iommu_group");
    let target = host
        .read_link(&link)
        .map_err(|e| Error::host("find the IOMMU group of", &link, e))?;
    let group = target.file_name().ok_or_else(|| {
        Error::host(
            "find the IOMMU group of",
            &link,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })?;
    Ok(paths.dev.join("vfio").join(group))
}

/// The first `sgN` under a SCSI device's `scsi_generic` directory (`virSCSIDeviceGetSgName`).
fn scsi_generic(host: &dyn Host, paths: &HostPaths, addr: String) -> Result<PathBuf> {
    let dir = paths
        .sysfs
        .join("bus/scsi/devices")
        .join(addr)
        .join("scsi_generic");
    let node = host
        .open_node(&dir)
        .map_err(|e| Error::host("find the SCSI generic node in", &dir, e))?;
    let mut names: Vec<_> = host
        .list_dir(&node)
        .map_err(|e| Error::host("find the SCSI generic node in", &dir, e))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let name = names.into_iter().next().ok_or_else(|| {
        Error::host(
            "find the SCSI generic node in",
            &dir,
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    Ok(paths.dev.join(name))
}

/// libvirt's `virTPMCreateCancelPath`: `/sys/class/tpm/NAME/device/cancel`, else the `misc`
/// class's.
fn tpm_cancel(host: &dyn Host, paths: &HostPaths, device: &Path) -> Result<PathBuf> {
    let name = device.file_name().unwrap_or_default();
    for class in ["tpm", "misc"] {
        let p = paths
            .sysfs
            .join("class")
            .join(class)
            .join(name)
            .join("device/cancel");
        if exists(host, &p) {
            return Ok(p);
        }
    }
    Err(Error::host(
        "find the TPM cancel file of",
        device,
        std::io::Error::from_raw_os_error(libc::ENOENT),
    ))
}

fn not_yet(r: &mut Resource) {
    r.skip = Some(match r.kind {
        ResourceKind::Chardev => {
            "a listen-mode socket the VMM creates; libvirt labels it only once it exists".into()
        }
        ResourceKind::TpmSocket => "swtpm creates its socket when it starts; not there yet".into(),
        _ => format!("{} does not exist yet", r.path.display()),
    });
}

fn resolve(
    host: &dyn Host,
    paths: &HostPaths,
    mut r: Resource,
    out: &mut Vec<Resource>,
) -> Result<()> {
    let Some(d) = r.derive.clone() else {
        out.push(r);
        return Ok(());
    };
    if r.skip.is_some() {
        out.push(r);
        return Ok(());
    }
    match d {
        Derive::PciGroup { address } => {
            r.path = vfio_group(
                host,
                paths,
                paths.sysfs.join("bus/pci/devices").join(address),
            )?;
        }
        Derive::MdevGroup { uuid } => {
            r.path = vfio_group(host, paths, paths.sysfs.join("bus/mdev/devices").join(uuid))?;
        }
        Derive::Usb { bus, device } => {
            // virUSBDeviceNew: the node is named by the address; its absence fails the start.
            r.path = paths.dev.join(format!("bus/usb/{bus:03}/{device:03}"));
        }
        Derive::ScsiGeneric {
            host: h,
            bus,
            target,
            unit,
        } => {
            r.path = scsi_generic(host, paths, format!("{h}:{bus}:{target}:{unit}"))?;
        }
        Derive::DevNode { name } | Derive::Sgx { name } => r.path = paths.dev.join(name),
        Derive::TpmCancel { device } => r.path = tpm_cancel(host, paths, &device)?,
        Derive::SwtpmState { uuid, version } => match uuid {
            None => {
                r.skip = Some("the domain has no uuid, which names swtpm's state directory".into());
            }
            Some(u) => {
                let sub = if version.as_deref() == Some("1.2") {
                    "tpm1.2"
                } else {
                    "tpm2"
                };
                r.path = paths.swtpm_storage.join(u).join(sub);
                if !exists(host, &r.path) {
                    not_yet(&mut r);
                }
            }
        },
        Derive::SwtpmLog { name } => {
            r.path = paths.swtpm_log.join(format!("{name}-swtpm.log"));
            if !exists(host, &r.path) {
                not_yet(&mut r);
            }
        }
        Derive::SwtpmSocket { name } => {
            // libvirt names it "<id>-<name>-swtpm.sock"; the id is only known at run time.
            let suffix = format!("-{name}-swtpm.sock");
            let found = host.open_node(&paths.swtpm_run).ok().and_then(|n| {
                let mut names: Vec<_> = host
                    .list_dir(&n)
                    .ok()?
                    .into_iter()
                    .map(|(n, _)| n.to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(&suffix))
                    .collect();
                names.sort();
                names.into_iter().next()
            });
            match found {
                Some(f) => r.path = paths.swtpm_run.join(f),
                None => {
                    r.path = paths.swtpm_run.join(format!("*{suffix}"));
                    not_yet(&mut r);
                }
            }
        }
        Derive::IfExists => {
            if !exists(host, &r.path) {
                not_yet(&mut r);
            }
        }
        Derive::Pipe => {
            // virSecuritySELinuxSetChardevLabel: both halves when both exist, else the path.
            let half = |ext: &str| {
                let mut s = r.path.clone().into_os_string();
                s.push(ext);
                PathBuf::from(s)
            };
            let (i, o) = (half(".in"), half(".out"));
            if exists(host, &i) && exists(host, &o) {
                let mut second = r.clone();
                r.path = i;
                second.path = o;
                out.push(r);
                out.push(second);
                return Ok(());
            }
        }
    }
    out.push(r);
    Ok(())
}

impl Domain {
    /// [`Domain::resources`] with every derived path found on `host` under `paths`. Resources
    /// that cannot be there yet (a listen-mode socket, swtpm's files) come back skipped, with
    /// the reason; a device that must be there and is not is an error, as in libvirt.
    pub fn resources_on(&self, host: &dyn Host, paths: &HostPaths) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        for r in self.resources() {
            resolve(host, paths, r, &mut out)?;
        }
        Ok(dedupe(out, true))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::host::fake::FakeHost;
    use crate::host::FileKind;

    fn tpm_domain(uuid: Option<&str>) -> Domain {
        let uuid = uuid
            .map(|u| format!("<uuid>{u}</uuid>"))
            .unwrap_or_default();
        Domain::from_xml(
            &format!(
                "<domain type='kvm'><name>t1</name>{uuid}<devices><tpm model='tpm-crb'>\
                 <backend type='emulator' version='2.0'/></tpm></devices></domain>"
            ),
            "t.xml",
        )
        .unwrap()
    }

    #[test]
    fn swtpm_files_are_found_where_libvirt_keeps_them() {
        let h = FakeHost::new();
        let paths = HostPaths {
            swtpm_storage: "/st".into(),
            swtpm_log: "/log".into(),
            swtpm_run: "/run/sw".into(),
            ..HostPaths::default()
        };
        let u = "0f0f0f0f-0000-4000-8000-000000000001";
        h.add(
            Path::new(&format!("/st/{u}/tpm2")),
            FileKind::Dir,
            0,
            0,
            0o700,
        );
        h.add_file("/log/t1-swtpm.log");
        h.add(
            Path::new("/run/sw/7-t1-swtpm.sock"),
            FileKind::Socket,
            0,
            0,
            0o600,
        );
        h.add(
            Path::new("/run/sw/7-other-swtpm.sock"),
            FileKind::Socket,
            0,
            0,
            0o600,
        );
        let r = tpm_domain(Some(u)).resources_on(&h, &paths).unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.path.display().to_string(), r.skip.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                (format!("/st/{u}/tpm2"), false),
                ("/log/t1-swtpm.log".into(), false),
                ("/run/sw/7-t1-swtpm.sock".into(), false),
            ]
        );
    }

    #[test]
    fn swtpm_files_not_there_yet_or_unnamed_are_skipped_with_a_reason() {
        let h = FakeHost::new();
        let r = tpm_domain(None)
            .resources_on(&h, &HostPaths::default())
            .unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].skip.as_deref().unwrap().contains("uuid"), "{r:?}");
        assert!(r.iter().all(|r| r.skip.is_some()), "{r:?}");
    }

    #[test]
    fn usb_and_scsi_nodes_come_from_the_address_and_sysfs() {
        let h = FakeHost::new();
        h.add(
            Path::new("/s/bus/scsi/devices/2:0:3:1/scsi_generic/sg7"),
            FileKind::Dir,
            0,
            0,
            0o755,
        );
        let paths = HostPaths {
            sysfs: "/s".into(),
            dev: "/d".into(),
            ..HostPaths::default()
        };
        let d = Domain::from_xml(
            "<domain><name>u</name><devices>\
             <hostdev mode='subsystem' type='usb'><source><address bus='3' device='12'/></source></hostdev>\
             <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>\
             <hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host2'/><address bus='0' target='3' unit='1'/></source></hostdev>\
             </devices></domain>",
            "u.xml",
        )
        .unwrap();
        let r = d.resources_on(&h, &paths).unwrap();
        assert_eq!(r[0].path, Path::new("/d/bus/usb/003/012"));
        assert!(r[1].skip.as_deref().unwrap().contains("vendor"));
        assert_eq!(r[2].path, Path::new("/d/sg7"));
    }
}
