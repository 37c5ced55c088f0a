//! vsock listener: how the host on the parent instance reaches the enclave inside a TEE
//! (Nitro, or a confidential VM with a virtio-vsock device).
//!
//! The listener binds a port on a context id — normally [`VMADDR_CID_ANY`], i.e. "whatever CID
//! this VM has" — and serves each accepted connection with [`serve_connection`](super::serve_connection), exactly like
//! the Unix-socket listener.

use std::io;
use std::string::String;

use tokio_vsock::VsockListener;

pub use tokio_vsock::{VMADDR_CID_ANY, VMADDR_CID_HOST, VsockAddr};

use super::{SharedEnclave, is_transient_accept_error, spawn_connection};

/// Why a `CID:PORT` string is not a vsock address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// There is no `:` between the CID and the port.
    #[error("expected CID:PORT")]
    MissingPort,
    /// The CID is neither `ANY` nor a decimal `u32`.
    #[error("bad vsock CID {0:?}: expected ANY or a decimal number")]
    BadCid(String),
    /// The port is not a decimal `u32`.
    #[error("bad vsock port {0:?}: expected a decimal number")]
    BadPort(String),
}

/// Parses `CID:PORT` (the part after `vsock://`): the CID is `ANY` (case-insensitive, meaning
/// [`VMADDR_CID_ANY`]) or a decimal number, the port a decimal number.
///
/// # Errors
/// An [`AddrError`] naming the part that is wrong.
pub fn parse_addr(s: &str) -> Result<VsockAddr, AddrError> {
    let (cid, port) = s.rsplit_once(':').ok_or(AddrError::MissingPort)?;
    let cid = if cid.eq_ignore_ascii_case("any") {
        VMADDR_CID_ANY
    } else {
        parse_u32(cid).ok_or_else(|| AddrError::BadCid(cid.into()))?
    };
    let port = parse_u32(port).ok_or_else(|| AddrError::BadPort(port.into()))?;
    Ok(VsockAddr::new(cid, port))
}

/// A decimal `u32` with digits only (no sign, no spaces).
fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A bound vsock port.
#[derive(Debug)]
pub struct Listener {
    inner: VsockListener,
}

impl Listener {
    /// Binds `addr` (use [`VMADDR_CID_ANY`] as the CID inside an enclave).
    ///
    /// # Errors
    /// I/O errors: no vsock device, port in use, …
    pub fn bind(addr: VsockAddr) -> io::Result<Self> {
        VsockListener::bind(addr).map(|inner| Self { inner })
    }

    /// The address actually bound (the CID stays [`VMADDR_CID_ANY`] if that was asked for).
    ///
    /// # Errors
    /// I/O errors from `getsockname`.
    pub fn local_addr(&self) -> io::Result<VsockAddr> {
        self.inner.local_addr()
    }

    /// Accepts connections until `shutdown` resolves, serving each on its own task.
    ///
    /// A connection that fails while being accepted (the peer gave up, a signal) is skipped;
    /// any other `accept` error ends the listener.
    ///
    /// # Errors
    /// A failing `accept`.
    pub async fn serve(self, enclave: SharedEnclave, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.inner.accept() => {
                    let stream = match accepted {
                        Ok((stream, peer)) => {
                            tracing::info!(cid = peer.cid(), port = peer.port(), "vsock connection accepted");
                            stream
                        }
                        Err(e) if is_transient_accept_error(&e) => {
                            tracing::info!(error = %e, "vsock accept failed; continuing");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    spawn_connection(stream, &enclave);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_and_numeric_cids() {
        assert_eq!(parse_addr("ANY:5000"), Ok(VsockAddr::new(VMADDR_CID_ANY, 5000)));
        assert_eq!(parse_addr("any:1"), Ok(VsockAddr::new(VMADDR_CID_ANY, 1)));
        assert_eq!(parse_addr("16:5000"), Ok(VsockAddr::new(16, 5000)));
        assert_eq!(parse_addr("4294967295:4294967295"), Ok(VsockAddr::new(u32::MAX, u32::MAX)));
    }

    #[test]
    fn rejects_malformed_addresses() {
        assert_eq!(parse_addr("5000"), Err(AddrError::MissingPort));
        assert_eq!(parse_addr(":5000"), Err(AddrError::BadCid(String::new())));
        assert_eq!(parse_addr("-1:5000"), Err(AddrError::BadCid("-1".into())));
        assert_eq!(parse_addr("4294967296:1"), Err(AddrError::BadCid("4294967296".into())));
        assert_eq!(parse_addr("3:"), Err(AddrError::BadPort(String::new())));
        assert_eq!(parse_addr("3:+80"), Err(AddrError::BadPort("+80".into())));
        assert_eq!(parse_addr("3:80:1"), Err(AddrError::BadCid("3:80".into())));
    }
}
