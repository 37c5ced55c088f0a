//! Small, careful file I/O shared by the runtime, the simulated platform and the host's blob
//! store: bounded reads and crash-safe writes.

#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use std::format;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::vec::Vec;

/// Reads a whole file of at most `limit` bytes. The size is checked before anything is
/// allocated and again while reading (the file may grow in between).
///
/// # Errors
/// I/O errors; `InvalidData` when the file is larger than `limit`.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{len} bytes; expected at most {limit}")));
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("more than {limit} bytes")));
    }
    Ok(out)
}

/// Writes `data` to `path` via a temporary file in the same directory (created with `mode`
/// from the start, so a key is never readable by others), `fsync`, `rename`, and an `fsync`
/// of the directory. A crash at any point leaves either the old file or the new one, never a
/// truncated one (a stray `.<name>.tmp-<pid>` at worst).
///
/// # Errors
/// I/O errors; the temporary file is removed on failure.
pub fn write_atomically(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_path(path);
    // A temporary file left by a crash of this same pid would block `create_new`.
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed `mode`.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Where [`write_atomically`] stages `path`: `.<name>.tmp-<pid>` beside it.
#[must_use]
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let file_name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()))
}

/// Makes a rename or unlink in `path`'s directory durable.
///
/// # Errors
/// I/O errors.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing.
///
/// # Errors
/// I/O errors.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode_and_reads_with_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_atomically(&p, b"abc", 0o600).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        write_atomically(&p, b"defg", 0o600).unwrap();
        assert_eq!(read_limited(&p, 4).unwrap(), b"defg");
        assert_eq!(read_limited(&p, 3).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(!temp_path(&p).exists());
    }
}
