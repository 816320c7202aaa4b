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

#[link(name = "sepol")]
extern "C" {
    fn sepol_set_policydb_from_file(fp: *mut libc::FILE) -> libc::c_int;
    fn sepol_check_context(context: *const libc::c_char) -> libc::c_int;
}

/// libsepol holds one policy database per process: every call goes through this lock, which
/// also remembers which policy file is loaded.
static SEPOL: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Whether `context` is valid in the binary policy at `policy` (loaded once, then kept).
pub(crate) fn sepol_check(policy: &std::path::Path, context: &CStr) -> std::io::Result<bool> {
    let mut loaded = SEPOL.lock().unwrap_or_else(|p| p.into_inner());
    if loaded.as_deref() != Some(policy) {
        let path = std::ffi::CString::new(policy.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: both arguments are valid NUL-terminated strings.
        let fp = unsafe { libc::fopen(path.as_ptr(), c"re".as_ptr()) };
        if fp.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fp` is an open FILE; libsepol reads the policy from it and keeps a copy.
        let r = unsafe { sepol_set_policydb_from_file(fp) };
        // SAFETY: `fp` was opened above and is closed once.
        unsafe { libc::fclose(fp) };
        if r != 0 {
            *loaded = None;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "libsepol cannot read the policy",
            ));
        }
        *loaded = Some(policy.to_owned());
    }
    // SAFETY: `context` is a valid NUL-terminated string; the policy database is loaded.
    Ok(unsafe { sepol_check_context(context.as_ptr()) } == 0)
}
