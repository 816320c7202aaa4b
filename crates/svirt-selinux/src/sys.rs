//! The only unsafe code of svirt-selinux: writing the exec context in the forked child with raw
//! syscalls on buffers prepared before the fork (libselinux's setexeccon may allocate).

use std::ffi::CStr;

/// Write `label` (NUL-terminated) to `path` (`/proc/thread-self/attr/exec`).
pub(crate) fn write_attr(path: &CStr, label: &CStr) -> Result<(), i32> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    let bytes = label.to_bytes_with_nul();
    // SAFETY: `bytes` is a live buffer of `bytes.len()` bytes; `fd` is ours.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let err = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    if n < 0 {
        Err(err)
    } else {
        Ok(())
    }
}
