//! The enclave runtime (feature `std`): a driver, not logic.
//!
//! Each connection is: read bytes → [`Deframer`] → [`Enclave::handle`] → write the response
//! frame in chunks below 32 KiB. Transports are interchangeable byte streams: a Unix socket
//! ([`unix`]), an in-memory duplex for simulation ([`duplex`]), and vsock in production.
#![allow(
    clippy::std_instead_of_alloc,
    clippy::std_instead_of_core,
    reason = "std-only module: portability to no_std is not a goal here"
)]

pub mod files;
pub mod peer;
pub mod unix;
pub mod vsock;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use std::vec::Vec;

use sigil_protocol::{DecodeError, Deframer, Envelope, FrameError, Response, WireError, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroize;

use crate::{Enclave, EntropyUnavailable, Env};

/// The enclave shared by every connection of one process.
pub type SharedEnclave = Arc<Mutex<Enclave>>;

/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The operating system's clock and CSPRNG (`getrandom`: `getrandom(2)` on Linux, which
/// inside Nitro is fed by the NSM).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn unix_time(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    fn fill_random(&mut self, dest: &mut [u8]) -> Result<(), EntropyUnavailable> {
        getrandom::fill(dest).map_err(|_| EntropyUnavailable)
    }
}

/// Serves one connection until the peer closes it or sends a bad frame.
///
/// Requests on one connection are answered in order. A framing error is answered with an
/// error frame (`request_id` 0) and then the connection is closed: a stream whose framing is
/// in doubt cannot be resynchronised.
///
/// # Errors
/// I/O errors, and `InvalidData` after a framing error.
pub async fn serve_connection<S>(stream: S, enclave: SharedEnclave) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut deframer = Deframer::new();
    let mut buf = std::vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut env = SystemEnv;
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        deframer.push(buf.get(..n).unwrap_or_default());
        // The read buffer may hold a broker token.
        buf.get_mut(..n).unwrap_or_default().zeroize();
        loop {
            match deframer.next_frame() {
                Ok(Some(mut request)) => {
                    out.clear();
                    enclave.lock().unwrap_or_else(PoisonError::into_inner).handle_into(&request, &mut env, &mut out);
                    request.zeroize();
                    write_frame(&mut wr, &out).await?;
                }
                Ok(None) => break,
                Err(e) => {
                    write_frame(&mut wr, &framing_error(e)).await?;
                    wr.shutdown().await.ok();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }
}

/// Serves one accepted connection on its own task (what every listener does with a stream).
pub(crate) fn spawn_connection<S>(stream: S, enclave: &SharedEnclave)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let enclave = SharedEnclave::clone(enclave);
    tokio::spawn(async move {
        if let Err(e) = serve_connection(stream, enclave).await {
            tracing::info!(error = %e, "connection closed");
        }
    });
}

/// `accept` errors that concern one connection, not the listener: skip them and go on.
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}

/// The response to a stream whose framing broke.
fn framing_error(e: FrameError) -> Vec<u8> {
    let body = Response::Error(WireError {
        code: DecodeError::Frame(e).code(),
        message: std::string::ToString::to_string(&e),
    });
    sigil_protocol::encode_message(&Envelope { request_id: 0, body }).unwrap_or_default()
}

/// Writes one encoded frame in pieces of at most [`frame::MAX_WRITE_CHUNK`] bytes.
///
/// # Errors
/// I/O errors.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, encoded: &[u8]) -> io::Result<()> {
    for chunk in frame::write_chunks(encoded) {
        w.write_all(chunk).await?;
    }
    w.flush().await
}

/// Human-readable logs on stderr for sigil's binaries: INFO and above unless `RUST_LOG` says
/// otherwise, ANSI colour only on a terminal.
pub fn init_logging() {
    use io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Resolves on SIGTERM or Ctrl-C: how sigil's services are asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// An in-memory connection to `enclave` for simulation: the returned stream speaks the real
/// frame codec to a [`serve_connection`] task. Must be called inside a Tokio runtime.
#[must_use]
pub fn duplex(enclave: SharedEnclave) -> tokio::io::DuplexStream {
    let (client, server) = tokio::io::duplex(frame::MAX_FRAME);
    tokio::spawn(async move {
        if let Err(e) = serve_connection(server, enclave).await {
            tracing::debug!(error = %e, "in-memory enclave connection closed");
        }
    });
    client
}

/// An enclave served on a thread of its own, reached through in-memory duplex streams that
/// speak the real frame codec: what `sim` uses in place of vsock.
///
/// A real enclave runs on its own vCPUs; so does this one. Signing on a dedicated thread also
/// keeps the host's async workers from ever blocking on the enclave lock. The thread stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct InProcessEnclave {
    tx: tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>,
    enclave: SharedEnclave,
}

impl core::fmt::Debug for InProcessEnclave {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InProcessEnclave").finish_non_exhaustive()
    }
}

impl InProcessEnclave {
    /// Starts the enclave thread.
    ///
    /// # Errors
    /// The thread or its runtime could not be created.
    pub fn spawn(enclave: SharedEnclave) -> io::Result<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<tokio::io::DuplexStream>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let served = SharedEnclave::clone(&enclave);
        std::thread::Builder::new().name("sigil-enclave".into()).spawn(move || {
            rt.block_on(async move {
                while let Some(stream) = rx.recv().await {
                    let e = SharedEnclave::clone(&served);
                    tokio::spawn(async move {
                        if let Err(err) = serve_connection(stream, e).await {
                            tracing::debug!(error = %err, "in-process enclave connection closed");
                        }
                    });
                }
            });
        })?;
        Ok(Self { tx, enclave })
    }

    /// A new connection to the enclave.
    ///
    /// # Errors
    /// `BrokenPipe` if the enclave thread has stopped.
    pub fn connect(&self) -> io::Result<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(frame::MAX_FRAME);
        self.tx.send(server).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "in-process enclave stopped"))?;
        Ok(client)
    }

    /// The enclave itself (for inspection in tests and `sigil dev`).
    #[must_use]
    pub const fn enclave(&self) -> &SharedEnclave {
        &self.enclave
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::BrokerKey;
    use crate::{Config, K3};
    use sigil_protocol::{Request, decode_message, encode_message};

    fn shared() -> SharedEnclave {
        let mut e = Enclave::new(Config::new(BrokerKey::from_sec1(&[4; 65]).unwrap()));
        e.load_k3(1, K3::from_bytes([1; 32]));
        Arc::new(Mutex::new(e))
    }

    async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
        let mut d = Deframer::new();
        let mut b = [0u8; 1024];
        loop {
            if let Some(f) = d.next_frame().unwrap() {
                return Some(f);
            }
            let n = r.read(&mut b).await.unwrap();
            if n == 0 {
                return None;
            }
            d.push(&b[..n]);
        }
    }

    #[tokio::test]
    async fn duplex_answers_pipelined_requests_in_order() {
        let mut c = duplex(shared());
        let mut bytes = Vec::new();
        for id in 1..=3u64 {
            bytes.extend(encode_message(&Envelope { request_id: id, body: Request::Status }).unwrap());
        }
        c.write_all(&bytes).await.unwrap();
        // Frames may arrive coalesced: read them with one deframer.
        let mut d = Deframer::new();
        let mut ids = Vec::new();
        let mut b = [0u8; 4096];
        while ids.len() < 3 {
            let n = c.read(&mut b).await.unwrap();
            d.push(&b[..n]);
            while let Some(f) = d.next_frame().unwrap() {
                let r: Envelope<Response> = decode_message(&f).unwrap();
                assert!(matches!(r.body, Response::Status(_)));
                ids.push(r.request_id);
            }
        }
        assert_eq!(ids, [1, 2, 3]);
    }

    #[tokio::test]
    async fn duplex_answers_bad_magic_then_closes() {
        let mut c = duplex(shared());
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let f = read_frame(&mut c).await.unwrap();
        let r: Envelope<Response> = decode_message(&f).unwrap();
        match r.body {
            Response::Error(w) => assert_eq!(w.code, sigil_protocol::ErrorCode::MalformedFrame),
            other => panic!("{other:?}"),
        }
        assert!(read_frame(&mut c).await.is_none(), "connection must close");
    }
}
