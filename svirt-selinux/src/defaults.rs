//! The policy's default label for a path: `selabel_lookup` on the policy's file_contexts, like
//! restorecon. Works without a running SELinux kernel when given the file_contexts path.

use std::ffi::{c_void, CString};
use std::path::Path;

use selinux::label::{back_end, Labeler};

/// The default context of `path` (a regular file unless `is_dir`), from `file_contexts`.
pub fn policy_default(file_contexts: &Path, path: &Path, is_dir: bool) -> Option<String> {
    let spec = CString::new(file_contexts.as_os_str().as_encoded_bytes()).ok()?;
    let options = [
        (
            selinux_sys::SELABEL_OPT_PATH,
            spec.as_ptr().cast::<c_void>(),
        ),
        (selinux_sys::SELABEL_OPT_VALIDATE, std::ptr::null()),
    ];
    let labeler = Labeler::<back_end::File>::new(&options, true).ok()?;
    let kind = if is_dir { libc::S_IFDIR } else { libc::S_IFREG };
    let ctx = labeler
        .look_up_by_path(path, selinux::FileAccessMode::new(kind))
        .ok()?;
    let text = String::from_utf8_lossy(ctx.as_bytes())
        .trim_end_matches('\0')
        .to_owned();
    (!text.is_empty() && text != "<<none>>").then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_the_most_specific_entry_of_a_file_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let fc = dir.path().join("file_contexts");
        std::fs::write(
            &fc,
            "/srv(/.*)?\tsystem_u:object_r:var_t:s0\n\
             /srv/images(/.*)?\tsystem_u:object_r:virt_image_t:s0\n\
             /srv/images/[^/]+\\.iso\t--\tsystem_u:object_r:virt_content_t:s0\n",
        )
        .unwrap();
        assert_eq!(
            policy_default(&fc, Path::new("/srv/images/a.img"), false).as_deref(),
            Some("system_u:object_r:virt_image_t:s0")
        );
        assert_eq!(
            policy_default(&fc, Path::new("/srv/images/a.iso"), false).as_deref(),
            Some("system_u:object_r:virt_content_t:s0")
        );
        assert_eq!(
            policy_default(&fc, Path::new("/srv/other"), false).as_deref(),
            Some("system_u:object_r:var_t:s0")
        );
        assert_eq!(policy_default(&fc, Path::new("/opt/x"), false), None);
        assert_eq!(
            policy_default(&dir.path().join("missing"), Path::new("/srv/x"), false),
            None
        );
    }
}
