//! The only unsafe code of svirt-dac: raw prctl and close_range calls for the exec hook.

/// Drop capability `cap` from the bounding set. EINVAL (no such capability) is fine.
pub(crate) fn capbset_drop(cap: libc::c_ulong) -> Result<(), i32> {
    // SAFETY: PR_CAPBSET_DROP takes an integer argument and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    if r == 0 {
        return Ok(());
    }
    match nix::errno::Errno::last_raw() {
        libc::EINVAL => Ok(()),
        e => Err(e),
    }
}

/// Clear the ambient capability set.
pub(crate) fn clear_ambient() -> Result<(), i32> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments and touches no memory of ours.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last_raw())
    }
}

/// Mark file descriptors `first..=last` close-on-exec.
pub(crate) fn cloexec_range(first: u32, last: u32) -> Result<(), i32> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last_raw())
    }
}
