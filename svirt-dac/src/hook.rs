//! The DAC exec hook: in the forked child, drop the capability bounding set, set exactly the
//! supplementary groups, the gid and the uid (real, effective, saved), set `no_new_privs`, clear
//! ambient capabilities, and mark inherited descriptors close-on-exec except those kept on
//! purpose. Every value is prepared before the fork; `apply` only makes syscalls.

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use svirt_core::driver::{ExecHook, ExecPhase};

use crate::sys;

/// The identity a VM process takes.
#[derive(Debug, Clone)]
pub struct DacHook {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<Gid>,
    /// Sorted descriptors to keep open across exec.
    pub keep_fds: Vec<u32>,
}

impl DacHook {
    /// A hook for `uid:gid` with supplementary `groups`, keeping `keep_fds` open.
    pub fn new(uid: u32, gid: u32, groups: &[u32], keep_fds: &[i32]) -> Self {
        let mut keep: Vec<u32> = keep_fds
            .iter()
            .filter(|&&f| f > 2)
            .map(|&f| f as u32)
            .collect();
        keep.sort_unstable();
        keep.dedup();
        DacHook {
            uid,
            gid,
            groups: groups.iter().map(|&g| Gid::from_raw(g)).collect(),
            keep_fds: keep,
        }
    }
}

impl ExecHook for DacHook {
    fn phase(&self) -> ExecPhase {
        ExecPhase::Identity
    }

    fn apply(&self) -> Result<(), i32> {
        let e = |e: nix::errno::Errno| e as i32;
        for cap in 0..64 {
            sys::capbset_drop(cap)?;
        }
        setgroups(&self.groups).map_err(e)?;
        let gid = Gid::from_raw(self.gid);
        setresgid(gid, gid, gid).map_err(e)?;
        let uid = Uid::from_raw(self.uid);
        setresuid(uid, uid, uid).map_err(e)?;
        nix::sys::prctl::set_no_new_privs().map_err(e)?;
        sys::clear_ambient()?;
        let mut first = 3u32;
        for &k in &self.keep_fds {
            sys::cloexec_range(first, k.saturating_sub(1))?;
            first = k + 1;
        }
        sys::cloexec_range(first, u32::MAX)
    }
}
