//! Small crash-safe file helpers for the state directory: exclusive locks and atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// An exclusive `flock` on a lock file, released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// Block until the exclusive lock on `path` is ours, creating the file (and its directory).
    pub fn exclusive(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::state("open lock file", path, e))?;
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::state("lock", path, e.into())),
            }
        }
        Ok(LockGuard {
            file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation the lock file holds (8 bytes, little-endian): 0 when it holds none.
    pub fn generation(&self) -> u64 {
        let mut b = [0u8; 8];
        match self.file.read_exact_at(&mut b, 0) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => 0,
        }
    }

    /// Write the generation into the lock file.
    pub fn set_generation(&self, generation: u64) -> Result<()> {
        self.file
            .write_all_at(&generation.to_le_bytes(), 0)
            .map_err(|e| Error::state("write", &self.path, e))
    }

    /// The note the lock file holds after its generation (a 4-byte little-endian length, then
    /// the bytes), if any: what an operation that held the lock was in the middle of.
    pub fn note(&self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.file.read_exact_at(&mut len, NOTE_AT).ok()?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_NOTE {
            return None;
        }
        let mut b = vec![0u8; len];
        self.file.read_exact_at(&mut b, NOTE_AT + 4).ok()?;
        Some(b)
    }

    /// Leave a note in the lock file for the next holder of the lock, should this process
    /// die before [`LockGuard::clear_note`]. The bytes are written before their length: a
    /// process killed in between leaves no note. Not synced: a note is about processes,
    /// which a reboot ends.
    pub fn set_note(&self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l as usize <= MAX_NOTE)
            .ok_or_else(|| {
                Error::state(
                    "write a note into",
                    &self.path,
                    io::Error::new(io::ErrorKind::InvalidInput, "the note is too long"),
                )
            })?;
        self.file
            .write_all_at(bytes, NOTE_AT + 4)
            .and_then(|()| self.file.write_all_at(&len.to_le_bytes(), NOTE_AT))
            .map_err(|e| Error::state("write a note into", &self.path, e))
    }

    /// Remove the note (its length set to 0).
    pub fn clear_note(&self) -> Result<()> {
        self.file
            .write_all_at(&0u32.to_le_bytes(), NOTE_AT)
            .map_err(|e| Error::state("clear the note in", &self.path, e))
    }
}

/// Where a lock file's note starts: after the generation.
const NOTE_AT: u64 = 8;

/// The longest note read or written (a hold's note lists the processes of the host).
const MAX_NOTE: usize = 64 << 20;

/// Create a directory (and parents) readable by root only, if missing.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::state("create directory", dir, e))
}

use std::os::unix::fs::DirBuilderExt;

/// Replace `path` with `data` atomically: write a temp file, fsync it, rename, fsync the directory.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::state("write", path, e)
    })
}

/// Read a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::state("read", path, e)),
    }
}

/// Remove a file; a missing file is fine.
pub fn remove_optional(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::state("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A note outlives the lock's holder and leaves the generation alone; a cleared note, and
    /// one whose length was never written (its writer killed in between), read as none.
    #[test]
    fn a_note_is_read_by_the_next_holder_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svirt.lock");
        {
            let g = LockGuard::exclusive(&path).unwrap();
            assert_eq!(g.note(), None, "a new lock file holds no note");
            g.set_generation(7).unwrap();
            g.set_note(b"held uid 5").unwrap();
        }
        let g = LockGuard::exclusive(&path).unwrap();
        assert_eq!(g.note().as_deref(), Some(&b"held uid 5"[..]));
        assert_eq!(g.generation(), 7, "the note overwrote the generation");
        g.set_note(b"x").unwrap();
        assert_eq!(
            g.note().as_deref(),
            Some(&b"x"[..]),
            "a shorter note replaces a longer"
        );
        g.clear_note().unwrap();
        assert_eq!(g.note(), None);
        // The bytes without their length: what a writer killed between the two leaves.
        g.file.write_all_at(b"half written", NOTE_AT + 4).unwrap();
        assert_eq!(g.note(), None);
        // A length past the end of the file, or past the limit, is no note.
        g.file
            .write_all_at(&1000u32.to_le_bytes(), NOTE_AT)
            .unwrap();
        assert_eq!(g.note(), None);
        g.file
            .write_all_at(&u32::MAX.to_le_bytes(), NOTE_AT)
            .unwrap();
        assert_eq!(g.note(), None);
        assert_eq!(g.generation(), 7);
    }
}
