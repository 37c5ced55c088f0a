//! Unix-socket listener: how a host on the same machine (or the simulation) reaches the
//! enclave runtime.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::{SharedEnclave, is_transient_accept_error, spawn_connection};

/// A bound Unix socket, removed from the file system on drop.
#[derive(Debug)]
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` with mode 0600 (only this user may connect).
    ///
    /// A stale socket left by a crashed enclave is replaced; a live one (something accepts
    /// connections on it) or any other kind of file is refused, never deleted.
    ///
    /// # Errors
    /// `AddrInUse` for a live socket, `AlreadyExists` for a non-socket file, other I/O errors.
    pub async fn bind(path: &Path) -> io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    std::format!("{} exists and is not a socket", path.display()),
                ));
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    std::format!("an enclave is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let inner = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { inner, path: path.to_path_buf() })
    }

    /// Accepts connections until `shutdown` resolves, serving each on its own task.
    ///
    /// A connection that fails while being accepted is skipped; any other `accept` error ends
    /// the listener.
    ///
    /// # Errors
    /// A failing `accept`.
    pub async fn serve(self, enclave: SharedEnclave, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.inner.accept() => match accepted {
                    Ok((stream, _)) => spawn_connection(stream, &enclave),
                    Err(e) if is_transient_accept_error(&e) => {
                        tracing::info!(error = %e, "accept failed; continuing");
                    }
                    Err(e) => return Err(e),
                },
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
