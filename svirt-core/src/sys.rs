//! The only unsafe code of svirt-core.

use std::process::Command;

/// Register `f` to run in the child between fork and exec.
pub(crate) fn pre_exec<F>(cmd: &mut Command, f: F)
where
    F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: `f` runs in the forked child. It only calls the hooks' `apply`, which the
    // `ExecHook` contract limits to async-signal-safe syscalls on data prepared before the fork;
    // `from_raw_os_error` builds an io::Error without allocating.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// Room for the largest file handle the kernel hands out (`MAX_HANDLE_SZ`).
const MAX_HANDLE_SZ: usize = 128;

/// `name_to_handle_at(fd, "", AT_EMPTY_PATH)`: the file handle of the inode `fd` refers to,
/// encoded as the handle type (4 bytes, little endian) followed by the handle bytes.
pub(crate) fn handle_of(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    // u32 words keep the buffer aligned for `struct file_handle` (two 32-bit fields).
    let mut buf = vec![0u32; 2 + MAX_HANDLE_SZ / 4];
    buf[0] = MAX_HANDLE_SZ as u32;
    let mut mount_id: libc::c_int = 0;
    let empty = c"";
    // SAFETY: `buf` is aligned for and at least as large as a `file_handle` header followed by
    // MAX_HANDLE_SZ bytes, and its `handle_bytes` field says so; `empty` is a valid C string;
    // `mount_id` is a valid out-pointer; the kernel writes only within those bounds.
    let r = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            empty.as_ptr(),
            buf.as_mut_ptr().cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = (buf[0] as usize).min(MAX_HANDLE_SZ);
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut out = bytes[4..8].to_vec();
    out.extend_from_slice(&bytes[8..8 + len]);
    Ok(out)
}

/// `open_by_handle_at(mount, handle, O_PATH|O_NOFOLLOW|O_CLOEXEC)` for a handle encoded by
/// [`handle_of`]. ESTALE when the inode no longer exists.
pub(crate) fn open_by_handle(
    mount: std::os::fd::BorrowedFd<'_>,
    handle: &[u8],
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    if handle.len() < 4 || handle.len() - 4 > MAX_HANDLE_SZ {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut bytes = [0u8; 8 + MAX_HANDLE_SZ];
    bytes[0..4].copy_from_slice(&((handle.len() - 4) as u32).to_ne_bytes());
    bytes[4..8].copy_from_slice(&handle[0..4]);
    bytes[8..8 + handle.len() - 4].copy_from_slice(&handle[4..]);
    let mut buf: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // SAFETY: `buf` is aligned for `file_handle` and holds its header and `handle_bytes` bytes
    // of handle; the kernel only reads it. `mount` is a valid fd for the call's duration.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `struct xattr_args` of `getxattrat(2)`/`setxattrat(2)` (Linux 6.13).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// The syscall numbers of `setxattrat` and `getxattrat`: new syscalls share one number on
/// every architecture that uses the common table.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_SETXATTRAT: libc::c_long = 463;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_GETXATTRAT: libc::c_long = 464;

/// `getxattrat(dir, name, AT_SYMLINK_NOFOLLOW, key, buf)`: the length of the value, which is
/// copied into `buf` (ERANGE when it does not fit, ENODATA when absent, ENOSYS before 6.13).
pub(crate) fn getxattrat(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    key: &std::ffi::CStr,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use std::os::fd::AsRawFd;
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: u32::try_from(buf.len()).unwrap_or(u32::MAX),
            flags: 0,
        };
        // SAFETY: `name` and `key` are NUL-terminated; `args` points at `buf`, writable for
        // `args.size` bytes, and the kernel writes at most that many; `args` is a valid
        // `struct xattr_args` of the size passed; `dir` is a valid fd for the call.
        let r = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                key.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(r as usize)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (dir, name, key, buf);
        Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// `setxattrat(dir, name, AT_SYMLINK_NOFOLLOW, key, value)` (ENOSYS before 6.13).
pub(crate) fn setxattrat(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    key: &std::ffi::CStr,
    value: &[u8],
) -> std::io::Result<()> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use std::os::fd::AsRawFd;
        let args = XattrArgs {
            value: value.as_ptr() as u64,
            size: u32::try_from(value.len())
                .map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?,
            flags: 0,
        };
        // SAFETY: `name` and `key` are NUL-terminated; `args` points at `value`, readable for
        // `args.size` bytes, and the kernel only reads it; `dir` is a valid fd for the call.
        let r = unsafe {
            libc::syscall(
                SYS_SETXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                key.as_ptr(),
                &args as *const XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (dir, name, key, value);
        Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)` (Linux 6.6; ENOSYS before, EOPNOTSUPP
/// on a symlink).
pub(crate) fn fchmodat_nofollow(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    mode: u32,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `name` is NUL-terminated and `dir` a valid fd for the call; no memory is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(-1, sig)`: `sig` to every process the calling thread may signal, but init and the
/// caller's own.
pub(crate) fn kill_all(sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `kill` takes no pointer and touches no memory of this process.
    let r = unsafe { libc::kill(-1, sig) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(NS_GET_OWNER_UID)`: the uid (in the caller's user namespace) that owns the user
/// namespace `ns` refers to.
pub(crate) fn ns_owner_uid(ns: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
    let mut uid: libc::uid_t = 0;
    // SAFETY: `ns` is a valid fd for the call; the kernel writes one `uid_t` into `uid`, which
    // lives across the call.
    let r = unsafe {
        libc::ioctl(
            ns.as_raw_fd(),
            NS_GET_OWNER_UID,
            &mut uid as *mut libc::uid_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

/// `ioctl(NS_GET_PARENT)`: the parent of the user namespace `ns` refers to; EPERM where that
/// is outside the caller's own (the caller's namespace reached).
pub(crate) fn ns_parent(ns: std::os::fd::BorrowedFd<'_>) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    const NS_GET_PARENT: libc::c_ulong = 0xb702;
    // SAFETY: `ns` is a valid fd for the call; the request takes no argument.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
