//! The host's half of K3 custody (SPEC §6): it keeps the enclave's sealed blob on disk and
//! hands it back when the enclave (re)starts. It can read nothing inside a blob.
//!
//! ```text
//!  state dir:  k3-sealed-00000000000000000007.blob   ← confirmed (opened in the enclave)
//!              k3-sealed-00000000000000000008.blob   ← newest, until confirmed
//!
//!  enclave needs a seal ─▶ SealK3 ─▶ write gen N+1 (temp, fsync, rename, fsync dir)
//!                        ─▶ UnsealK3(gen N+1) ─▶ ok: remove older gens it supersedes
//!  enclave (re)started  ─▶ UnsealK3(newest) ─▶ failed? try the previous generation
//!                        ─▶ none opens: reprovision_required, every file left untouched
//! ```
//!
//! A generation is removed only once a newer one has opened in the enclave *and* holds every
//! epoch the old one held (same K3 fingerprints), so a blob that did not open, or one with an
//! epoch the newer blob lacks (a retired epoch), is never deleted by the host.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sigil_enclave::runtime::files;
use sigil_protocol::custody::{BlobHeader, MAX_BLOB, UnsealK3};
use sigil_protocol::{CustodyStatus, Epoch, ErrorCode, Request, Response};
use tokio::sync::Mutex;

use crate::client::EnclaveClient;
use crate::error::AppError;

/// File name prefix of a blob generation.
const PREFIX: &str = "k3-sealed-";
/// How long a seal or unseal may take: on Nitro the enclave asks AWS KMS (a one-time RSA key,
/// TLS through the vsock proxy, IMDS credentials), which can exceed the ordinary call deadline.
const SEALING_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// File name suffix of a blob generation.
const SUFFIX: &str = ".blob";

/// What an operator is told when K3 could not be restored.
pub const REPROVISION_HINT: &str = "recover with `sigil provision` (the K3 file or DEV_KEY_SERVICE_MASTER_SECRET) \
     or `sigil replicate` from a healthy peer; the sealed blobs on disk were left untouched";

/// The directory of sealed blob generations.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

/// A blob written to its temporary file and synced, not yet renamed into place: what a crash
/// between writing and renaming leaves behind.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    generation: u64,
}

impl Staged {
    /// Renames the blob into place and syncs the directory.
    ///
    /// # Errors
    /// I/O errors (the temporary file is removed).
    pub fn commit(self) -> io::Result<u64> {
        let done = fs::rename(&self.tmp, &self.path).and_then(|()| files::sync_dir(&self.path));
        if done.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        done.map(|()| self.generation)
    }
}

impl BlobStore {
    /// Opens (creating, mode 0700) the state directory and removes temporary files a crash
    /// left: they were never renamed into place, so never confirmed.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(dir: &Path) -> io::Result<Self> {
        files::create_private_dir(dir)?;
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!(".{PREFIX}")) && name.contains(".tmp") {
                tracing::warn!(file = %name, "removing a sealed blob a crash left half-written (never confirmed)");
                fs::remove_file(dir.join(&*name))?;
            }
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{generation:020}{SUFFIX}"))
    }

    /// The generations on disk, ascending. Other files are ignored.
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub fn generations(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_prefix(PREFIX).and_then(|r| r.strip_suffix(SUFFIX))
                && n.len() == 20
                && let Ok(g) = n.parse::<u64>()
            {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// One generation's bytes (at most [`MAX_BLOB`]).
    ///
    /// # Errors
    /// I/O errors; `InvalidData` for an oversized file.
    pub fn read(&self, generation: u64) -> io::Result<Vec<u8>> {
        files::read_limited(&self.path(generation), MAX_BLOB as u64)
    }

    /// Writes `blob` as the next generation's temporary file and syncs it (see [`Staged`]).
    ///
    /// # Errors
    /// I/O errors.
    pub fn stage(&self, blob: &[u8]) -> io::Result<Staged> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let generation = self.generations()?.last().map_or(1, |g| g.saturating_add(1));
        let path = self.path(generation);
        let tmp = files::temp_path(&path);
        let _ = fs::remove_file(&tmp);
        let written = (|| {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(blob)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Staged { tmp, path, generation })
    }

    /// [`BlobStore::stage`] then [`Staged::commit`].
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_next(&self, blob: &[u8]) -> io::Result<u64> {
        self.stage(blob)?.commit()
    }

    /// Removes a generation this host has just written and that did not open.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_unconfirmed(&self, generation: u64) -> io::Result<()> {
        let path = self.path(generation);
        fs::remove_file(&path)?;
        files::sync_dir(&path)
    }

    /// Removes generations older than `confirmed` whose every epoch (and K3 fingerprint) is
    /// in `epochs`. Unreadable or foreign files are kept. Returns what was removed.
    ///
    /// # Errors
    /// I/O errors.
    pub fn prune_superseded(&self, confirmed: u64, epochs: &[Epoch]) -> io::Result<Vec<u64>> {
        let keep: BTreeSet<Epoch> = epochs.iter().copied().collect();
        let mut removed = Vec::new();
        for g in self.generations()?.into_iter().filter(|g| *g < confirmed) {
            let superseded = self
                .read(g)
                .ok()
                .and_then(|b| BlobHeader::parse(&b).ok().map(|(h, _)| h))
                .is_some_and(|h| h.epochs.iter().all(|e| keep.contains(e)));
            if superseded {
                fs::remove_file(self.path(g))?;
                removed.push(g);
            } else {
                tracing::warn!(
                    generation = g,
                    "keeping an older sealed blob: it holds an epoch the newest lacks, or did not parse"
                );
            }
        }
        files::sync_dir(&self.path(confirmed))?;
        Ok(removed)
    }
}

/// Keeps the enclave's K3 restored and its blob stored.
#[derive(Debug)]
pub struct Custodian {
    store: Option<BlobStore>,
    /// The enclave instance last reconciled (restore runs once per instance); held for the
    /// whole of a reconciliation, so only one runs at a time.
    running: Mutex<Option<[u8; 16]>>,
    /// What readers see; never held across an await, so `/readyz` and `/v1/custody` never
    /// wait for a reconciliation in progress.
    published: std::sync::Mutex<Published>,
}

#[derive(Debug, Default, Clone)]
struct Published {
    /// Why restoring failed for the current enclave instance.
    reprovision: Option<String>,
    /// Why the last persist failed.
    persist_error: Option<String>,
}

/// The custody state: the enclave's, and the host's own findings.
#[derive(Debug, Clone)]
pub struct Report {
    /// The enclave's custody state.
    pub status: CustodyStatus,
    /// Set when K3 could not be restored: why (the operator must re-provision).
    pub reprovision: Option<String>,
    /// Set when the last attempt to store a blob failed.
    pub persist_error: Option<String>,
    /// Blob generations on disk.
    pub generations: Vec<u64>,
}

impl Custodian {
    /// A custodian storing blobs in `store`; without one, blobs are only confirmed (K3 then
    /// lives in the enclave's memory alone: a restart needs re-provisioning or replication).
    #[must_use]
    pub fn new(store: Option<BlobStore>) -> Self {
        Self { store, running: Mutex::new(None), published: std::sync::Mutex::default() }
    }

    /// The blob store, if any.
    #[must_use]
    pub const fn store(&self) -> Option<&BlobStore> {
        self.store.as_ref()
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The restore failure of the current enclave instance, if any.
    #[must_use]
    pub fn reprovision(&self) -> Option<String> {
        self.published().reprovision.clone()
    }

    /// The enclave's custody state and the host's findings, without reconciling.
    ///
    /// # Errors
    /// The enclave could not be asked.
    pub async fn report(&self, client: &EnclaveClient) -> Result<Report, AppError> {
        let status = custody_status(client).await?;
        Ok(self.report_for(status))
    }

    fn report_for(&self, status: CustodyStatus) -> Report {
        let published = self.published().clone();
        let generations = self.store.as_ref().and_then(|s| s.generations().ok()).unwrap_or_default();
        Report { status, reprovision: published.reprovision, persist_error: published.persist_error, generations }
    }

    /// Restores K3 into a freshly started enclave from the newest blob that opens, and
    /// stores (then confirms) a new blob whenever the enclave's epochs changed. Runs one at a
    /// time.
    ///
    /// # Errors
    /// The enclave could not be asked.
    pub async fn reconcile(&self, client: &EnclaveClient) -> Result<Report, AppError> {
        let mut boot_id = self.running.lock().await;
        let mut status = custody_status(client).await?;
        if *boot_id != Some(status.boot_id.0) {
            *boot_id = Some(status.boot_id.0);
            self.published().reprovision = None;
            let nothing_served = !status.epochs.iter().any(|e| e.durable);
            if nothing_served && let Some(store) = &self.store {
                match restore(client, store).await {
                    Ok(failure) => self.published().reprovision = failure,
                    Err(e) => {
                        // Not restored and not refused: try this instance again next time.
                        *boot_id = None;
                        return Err(e);
                    }
                }
                status = custody_status(client).await?;
            }
        }
        if status.epochs.iter().any(|e| e.durable) {
            // Provisioned or replicated since: the restore failure is history.
            self.published().reprovision = None;
        }
        if status.needs_seal {
            let persisted = self.persist(client).await;
            if let Err(e) = &persisted {
                tracing::error!(error = %e, "could not store a sealed K3 blob; new epochs stay pending (not served)");
            }
            self.published().persist_error = persisted.err();
            status = custody_status(client).await?;
        }
        Ok(self.report_for(status))
    }

    /// Seal → store (new generation) → confirm → prune what it supersedes.
    async fn persist(&self, client: &EnclaveClient) -> Result<(), String> {
        let blob = match client.call_within(Request::SealK3, SEALING_DEADLINE).await {
            Ok(Response::SealedK3(s)) => s.blob,
            Ok(Response::Error(e)) => return Err(format!("enclave could not seal: {}", e.message)),
            Ok(_) => return Err("unexpected answer to SealK3".into()),
            Err(e) => return Err(e.to_string()),
        };
        let generation = match &self.store {
            Some(store) => {
                Some(store.write_next(&blob).map_err(|e| format!("cannot write {}: {e}", store.dir().display()))?)
            }
            None => None,
        };
        match client.call_within(Request::UnsealK3(UnsealK3 { blob: blob.clone() }), SEALING_DEADLINE).await {
            Ok(Response::CustodyStatus(_)) => {}
            Ok(Response::Error(e)) => {
                // Ours, just written, and the enclave says it does not open: useless, and
                // keeping it would pile up one file per retry. (Blobs that fail at *restore*
                // are never deleted; nor is this one when the enclave merely could not be asked.)
                if let (Some(store), Some(g)) = (&self.store, generation) {
                    let _ = store.remove_unconfirmed(g);
                }
                return Err(format!("the new blob did not open in the enclave: {}", e.message));
            }
            Ok(_) => return Err("unexpected answer to UnsealK3".into()),
            Err(e) => return Err(e.to_string()),
        }
        if let (Some(store), Some(g)) = (&self.store, generation) {
            let epochs = BlobHeader::parse(&blob).map(|(h, _)| h.epochs).unwrap_or_default();
            let removed = store.prune_superseded(g, &epochs).map_err(|e| format!("cannot prune: {e}"))?;
            tracing::info!(generation = g, epochs = epochs.len(), ?removed, "sealed K3 blob stored and confirmed");
        }
        Ok(())
    }
}

async fn custody_status(client: &EnclaveClient) -> Result<CustodyStatus, AppError> {
    match client.call(Request::CustodyStatus).await {
        Ok(Response::CustodyStatus(s)) => Ok(s),
        Ok(Response::Error(e)) => Err(AppError::with(e.code, e.message)),
        Ok(_) => Err(AppError::new(ErrorCode::Internal, "unexpected answer to CustodyStatus")),
        Err(e) => Err(AppError::with(e.code(), e.to_string())),
    }
}

/// Tries the generations newest first; returns why none opened (`None` on success or when
/// there is nothing to restore). An enclave that stops answering midway is not a reason to
/// re-provision: that is the `Err`, and the caller tries again later.
async fn restore(client: &EnclaveClient, store: &BlobStore) -> Result<Option<String>, AppError> {
    let generations = match store.generations() {
        Ok(g) if g.is_empty() => return Ok(None),
        Ok(g) => g,
        Err(e) => return Ok(Some(format!("cannot list {}: {e}", store.dir().display()))),
    };
    let newest = generations.last().copied();
    let mut failures = Vec::new();
    for g in generations.into_iter().rev() {
        let blob = match store.read(g) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("generation {g}: {e}"));
                continue;
            }
        };
        match client.call_within(Request::UnsealK3(UnsealK3 { blob }), SEALING_DEADLINE).await {
            Ok(Response::CustodyStatus(s)) => {
                if Some(g) != newest {
                    tracing::warn!(generation = g, newer_failures = ?failures, "newest sealed blob did not open; restored K3 from the previous generation");
                }
                tracing::info!(generation = g, current_key_version = ?s.current_key_version, "K3 restored from the sealed blob");
                return Ok(None);
            }
            Ok(Response::Error(e)) if e.code == ErrorCode::ReprovisionRequired => {
                failures.push(format!("generation {g}: {}", e.message));
            }
            Ok(Response::Error(e)) => return Err(AppError::with(e.code, e.message)),
            Ok(_) => failures.push(format!("generation {g}: unexpected answer")),
            Err(e) => return Err(AppError::with(e.code(), format!("enclave unreachable while restoring: {e}"))),
        }
    }
    let reason = failures.join("; ");
    tracing::error!(
        error = "reprovision_required",
        reason = %reason,
        dir = %store.dir().display(),
        "K3 could not be restored: {REPROVISION_HINT}"
    );
    Ok(Some(reason))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use sigil_protocol::{Bytes, Platform};

    fn blob(epochs: &[(u8, u8)]) -> Vec<u8> {
        let header = BlobHeader {
            platform: Platform::Sim,
            measurement: vec![1; 144],
            epochs: epochs.iter().map(|(v, f)| Epoch { key_version: *v, k3_fingerprint: Bytes([*f; 32]) }).collect(),
            key_handle: vec![0; 32],
            nonce: Bytes([0; 12]),
        };
        let mut b = header.encode_aad();
        b.extend_from_slice(&[0; 48]);
        b
    }

    #[test]
    fn generations_are_written_in_order_and_a_crash_before_rename_leaves_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.write_next(&blob(&[(1, 1)])).unwrap(), 1);
        // "Killed" between writing and renaming: the staged file is never committed.
        let staged = store.stage(&blob(&[(1, 1), (2, 2)])).unwrap();
        assert!(staged.tmp.exists());
        std::mem::forget(staged);
        assert_eq!(store.generations().unwrap(), [1]);
        assert_eq!(store.read(1).unwrap(), blob(&[(1, 1)]));
        // The next start removes the half-written file and carries on from generation 1.
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(store.write_next(&blob(&[(1, 1), (2, 2)])).unwrap(), 2);
        assert_eq!(fs::metadata(store.path(2)).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn only_superseded_generations_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        store.write_next(&blob(&[(1, 1)])).unwrap(); // 1: superseded by 4
        store.write_next(&blob(&[(1, 9)])).unwrap(); // 2: another K3 for epoch 1: kept
        fs::write(store.path(3), b"garbage").unwrap(); // 3: unreadable: kept
        let epochs = [
            Epoch { key_version: 1, k3_fingerprint: Bytes([1; 32]) },
            Epoch { key_version: 2, k3_fingerprint: Bytes([2; 32]) },
        ];
        let g = store.write_next(&blob(&[(1, 1), (2, 2)])).unwrap();
        assert_eq!(g, 4);
        assert_eq!(store.prune_superseded(g, &epochs).unwrap(), [1]);
        assert_eq!(store.generations().unwrap(), [2, 3, 4]);
        // A retirement: the newer blob lacks epoch 1, so the older one stays.
        let g = store.write_next(&blob(&[(2, 2)])).unwrap();
        assert!(store.prune_superseded(g, &epochs[1..]).unwrap().is_empty());
        // Foreign files are ignored.
        fs::write(dir.path().join("k3-sealed-1.blob"), b"x").unwrap();
        assert_eq!(store.generations().unwrap(), [2, 3, 4, 5]);
    }

    use std::os::unix::fs::PermissionsExt as _;
}
