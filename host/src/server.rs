//! Serving the router: TLS termination (rustls, TLS 1.2/1.3), HTTP/1.1 with keep-alive, and
//! graceful shutdown that stops accepting and drains in-flight requests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain PEM is unreadable or empty.
    #[error("cannot read certificate chain {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The private key PEM is unreadable (never echoed).
    #[error("cannot read private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. key does not match certificate).
    #[error("invalid TLS certificate/key pair: {0}")]
    Config(String),
}

/// A rustls server configuration from PEM bytes (certificate chain, private key).
///
/// # Errors
/// [`TlsError`].
pub fn tls_config_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert { path: "<memory>".into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: "<memory>".into(), reason: "no certificate found".into() });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| TlsError::Key { path: "<memory>".into(), reason: "no usable private key".into() })?;
    // The provider is named, not taken from rustls' crate features: another crate in the same
    // build (the enclave's KMS client) enables rustls' `ring` too, and with two providers
    // compiled in there is no implicit default.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`tls_config_from_pem`] from files.
///
/// # Errors
/// [`TlsError`], naming the file.
pub fn tls_config_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| TlsError::Cert { path: cert.display().to_string(), reason: e.to_string() })?;
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(key).map_err(|e| TlsError::Key { path: key.display().to_string(), reason: e.to_string() })?,
    );
    tls_config_from_pem(&cert_pem, &key_pem).map_err(|e| match e {
        TlsError::Cert { reason, .. } => TlsError::Cert { path: cert.display().to_string(), reason },
        TlsError::Key { reason, .. } => TlsError::Key { path: key.display().to_string(), reason },
        other => other,
    })
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits up
/// to [`DRAIN_TIMEOUT`] for in-flight requests. With `tls = None` it speaks plain HTTP (the
/// caller guarantees that only happens on loopback).
///
/// # Errors
/// Only a failing `accept` that is not a per-connection error.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client gets HEADER_READ_TIMEOUT to send each request's headers, so a trickling client
    // cannot hold a connection (and its buffers) forever.
    http.keep_alive(true).timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                // Per-connection failures (e.g. the peer reset before accept) are not fatal;
                // running out of file descriptors is retried after a pause.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        match &acceptor {
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return log_handshake(peer, &e),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
            None => {
                let conn = http.serve_connection(TokioIo::new(tcp), service);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
    Ok(())
}

fn log_handshake(peer: SocketAddr, e: &io::Error) {
    tracing::debug!(%peer, error = %e, "TLS handshake failed");
}

/// Resolves on SIGTERM or Ctrl-C.
pub use sigil_enclave::runtime::shutdown_signal;
