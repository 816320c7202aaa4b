//! Running a command under a domain's exec hooks: the hooks are prepared before the fork and
//! applied in the child just before exec.

use std::process::Command;

use crate::driver::ExecHook;

/// Arrange for `hooks` (already in phase order) to run in the child before `cmd` execs.
/// Works for both `spawn` (fork + exec) and `CommandExt::exec` (exec in place).
pub fn attach_hooks(cmd: &mut Command, hooks: Vec<Box<dyn ExecHook>>) {
    crate::sys::pre_exec(cmd, move || {
        for h in &hooks {
            h.apply().map_err(std::io::Error::from_raw_os_error)?;
        }
        Ok(())
    });
}
