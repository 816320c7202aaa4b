//! Reading configuration and domain files without trusting them: opened without blocking
//! (`O_NONBLOCK|O_NOCTTY`, so a FIFO or a terminal cannot hang svirt), accepted only when they
//! are regular files, and capped at [`MAX_INPUT`]. Standard input is read only when asked for
//! explicitly, as `-`, and is capped the same way.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest configuration or domain file svirt reads: 16 MiB.
pub const MAX_INPUT: u64 = 16 << 20;

/// The name that means standard input.
pub const STDIN: &str = "-";

/// Why an input file cannot be read; the caller wraps it in its own error with the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("cannot read it")]
    Io(#[source] std::io::Error),
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn read_capped(r: impl Read, limit: u64) -> Result<String, InputError> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(InputError::Io)?;
    if buf.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    String::from_utf8(buf).map_err(|_| InputError::NotText)
}

/// Read `path` (or standard input for `-`) as text, at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<String, InputError> {
    if path.as_os_str() == STDIN {
        return read_capped(std::io::stdin().lock(), limit);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(InputError::Io)?;
    let meta = file.metadata().map_err(InputError::Io)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular(kind(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge { limit });
    }
    read_capped(file, limit)
}

/// [`read_limited`] with [`MAX_INPUT`].
pub fn read(path: &Path) -> Result<String, InputError> {
    read_limited(path, MAX_INPUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = std::time::Instant::now();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, InputError::NotRegular("a FIFO")), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path()).unwrap_err();
        assert!(matches!(e, InputError::NotRegular("a directory")), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![b'a'; 101]).unwrap();
        let e = read_limited(&p, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is larger than the limit of 100 bytes");
        std::fs::write(&p, vec![b'a'; 100]).unwrap();
        assert_eq!(read_limited(&p, 100).unwrap().len(), 100);
        assert_eq!(MAX_INPUT, 16 * 1024 * 1024);
    }
}
