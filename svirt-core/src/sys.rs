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
