//! The audit log: one JSON line per request — time, request id, route, account, SHA-256 of
//! the signed payload, outcome and latency. Never K3, keys, KEKs, tokens or plaintext.

use std::fs::{File, OpenOptions};
use std::io::{self, LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What one request leaves in the log.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u128,
    /// The host's id for this request (also in the `x-request-id` response header).
    pub request_id: u64,
    /// The route as requested.
    pub route: &'a str,
    /// The account, lowercase hex, when the body named one.
    pub omni: Option<&'a str>,
    /// SHA-256 of the message or typed-data JSON, when something was to be signed.
    pub payload_sha256: Option<&'a str>,
    /// `ok` or the SPEC error code.
    pub outcome: &'a str,
    /// HTTP status.
    pub status: u16,
    /// Microseconds from request to response.
    pub latency_us: u128,
}

/// An append-only JSON-lines file, flushed line by line.
#[derive(Debug)]
pub struct AuditLog {
    out: Mutex<LineWriter<File>>,
}

impl AuditLog {
    /// Opens (creating, appending) the log at `path`.
    ///
    /// # Errors
    /// I/O errors opening the file.
    pub fn open(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // Owner-only: the log names accounts and request hashes.
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(Self { out: Mutex::new(LineWriter::new(file)) })
    }

    /// Appends one record. A write failure is reported on stderr (once per failure) but does
    /// not fail the request, which has already been answered.
    pub fn write(&self, record: &Record<'_>) {
        let Ok(mut line) = serde_json::to_vec(record) else { return };
        line.push(b'\n');
        if let Ok(mut out) = self.out.lock()
            && let Err(e) = out.write_all(&line)
        {
            tracing::error!(error = %e, "audit log write failed");
        }
    }
}

/// Milliseconds since the epoch, for [`Record::ts_ms`].
#[must_use]
pub fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis()
}
