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

// libselinux's regular expressions (libselinux is linked statically, .cargo/config.toml).
#[link(name = "pcre2-8", kind = "static")]
extern "C" {}

#[link(name = "sepol", kind = "static")]
extern "C" {
    fn sepol_set_policydb_from_file(fp: *mut libc::FILE) -> libc::c_int;
    fn sepol_check_context(context: *const libc::c_char) -> libc::c_int;
    fn sepol_debug(on: libc::c_int);
    fn sepol_context_to_sid(
        context: *const libc::c_char,
        len: libc::size_t,
        sid: *mut u32,
    ) -> libc::c_int;
    fn sepol_string_to_security_class(name: *const libc::c_char, class: *mut u16) -> libc::c_int;
    fn sepol_string_to_av_perm(class: u16, name: *const libc::c_char, av: *mut u32) -> libc::c_int;
    fn sepol_compute_av_reason(
        ssid: u32,
        tsid: u32,
        class: u16,
        requested: u32,
        avd: *mut SepolAvDecision,
        reason: *mut libc::c_uint,
    ) -> libc::c_int;
}

/// `struct sepol_av_decision` of libsepol's services.h.
#[repr(C)]
#[derive(Debug, Default)]
struct SepolAvDecision {
    allowed: u32,
    decided: u32,
    auditallow: u32,
    auditdeny: u32,
    seqno: u32,
}

/// libsepol holds one policy database per process: every call goes through this lock, which
/// also remembers which policy file is loaded.
static SEPOL: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// The process-wide libsepol policy database, locked, with `policy` loaded in it. SIDs, class
/// and permission values are only meaningful while one guard is held.
pub(crate) struct Sepol<'a> {
    _loaded: std::sync::MutexGuard<'a, Option<std::path::PathBuf>>,
}

impl std::fmt::Debug for Sepol<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sepol").finish_non_exhaustive()
    }
}

/// Lock libsepol and load the binary policy at `policy` unless it is the one already loaded.
pub(crate) fn sepol(policy: &std::path::Path) -> std::io::Result<Sepol<'static>> {
    let mut loaded = SEPOL.lock().unwrap_or_else(|p| p.into_inner());
    if loaded.as_deref() != Some(policy) {
        *loaded = None;
        let path = std::ffi::CString::new(policy.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: takes an integer; it only switches libsepol's stderr messages off.
        unsafe { sepol_debug(0) };
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
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "libsepol cannot read the policy",
            ));
        }
        *loaded = Some(policy.to_owned());
    }
    Ok(Sepol { _loaded: loaded })
}

impl Sepol<'_> {
    /// `sepol_check_context`: whether `context` is valid in the loaded policy.
    pub(crate) fn check_context(&self, context: &CStr) -> bool {
        // SAFETY: `context` is a valid NUL-terminated string; the policy database is loaded.
        unsafe { sepol_check_context(context.as_ptr()) == 0 }
    }

    /// The SID of `context`, `None` when the policy does not define it.
    pub(crate) fn sid(&self, context: &CStr) -> Option<u32> {
        let mut sid = 0u32;
        let len = context.to_bytes_with_nul().len();
        // SAFETY: `context` is a live buffer of `len` bytes ending in NUL; `sid` is ours.
        let r = unsafe { sepol_context_to_sid(context.as_ptr(), len, &mut sid) };
        (r == 0).then_some(sid)
    }

    /// The value of security class `name`.
    pub(crate) fn class(&self, name: &CStr) -> Option<u16> {
        let mut class = 0u16;
        // SAFETY: `name` is a valid NUL-terminated string; `class` is ours.
        let r = unsafe { sepol_string_to_security_class(name.as_ptr(), &mut class) };
        (r == 0).then_some(class)
    }

    /// The access-vector bit of permission `name` in `class`.
    pub(crate) fn perm(&self, class: u16, name: &CStr) -> Option<u32> {
        let mut av = 0u32;
        // SAFETY: `name` is a valid NUL-terminated string; `av` is ours.
        let r = unsafe { sepol_string_to_av_perm(class, name.as_ptr(), &mut av) };
        (r == 0 && av != 0).then_some(av)
    }

    /// `sepol_compute_av_reason`: the allowed vector and the reason bits for what is denied.
    pub(crate) fn compute_av(
        &self,
        source: u32,
        target: u32,
        class: u16,
        requested: u32,
    ) -> Option<(u32, u32)> {
        let mut avd = SepolAvDecision::default();
        let mut reason: libc::c_uint = 0;
        // SAFETY: `avd` and `reason` are ours and live for the call; the SIDs come from this
        // guard's policy.
        let r = unsafe {
            sepol_compute_av_reason(source, target, class, requested, &mut avd, &mut reason)
        };
        (r == 0).then_some((avd.allowed, reason))
    }
}

/// Whether `context` is valid in the binary policy at `policy` (loaded once, then kept).
pub(crate) fn sepol_check(policy: &std::path::Path, context: &CStr) -> std::io::Result<bool> {
    Ok(sepol(policy)?.check_context(context))
}
