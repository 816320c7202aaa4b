//! The SELinux exec hook: set the exec context so the VMM starts in its label.

use std::ffi::CString;

use svirt_core::driver::{ExecHook, ExecPhase};

use crate::sys;

/// Sets the exec context in the forked child.
#[derive(Debug)]
pub struct SelinuxHook {
    pub path: CString,
    pub label: CString,
}

impl ExecHook for SelinuxHook {
    fn phase(&self) -> ExecPhase {
        ExecPhase::Label
    }

    fn apply(&self) -> Result<(), i32> {
        sys::write_attr(&self.path, &self.label)
    }
}
