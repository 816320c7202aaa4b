//! The only unsafe code of svirt-landlock: the ABI query and `landlock_restrict_self` in the child.

use std::os::fd::RawFd;

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The kernel's Landlock ABI version; 0 or less when Landlock is unavailable.
pub fn kernel_abi() -> i32 {
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the syscall only returns
    // the ABI version; it reads and writes no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

/// `landlock_restrict_self(fd, 0)`, for the calling thread (the child before exec).
pub(crate) fn restrict_self(fd: RawFd) -> Result<(), i32> {
    // SAFETY: the syscall takes an fd and flags and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last_raw())
    }
}
