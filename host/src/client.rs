//! The host's enclave client: a small pool of persistent connections to the enclave, each
//! carrying many requests at once, matched to their responses by `request_id`.
//!
//! ```text
//!  call(req) ─ permit (max_in_flight, else Saturated) ─ pick live connection (round-robin)
//!     │                                                   │
//!     │  pending[id] = oneshot ◀── reader task ◀── Deframer ◀── enclave
//!     └─ frame(Envelope{id, req}) ─▶ bounded queue ─▶ writer ─▶ chunks < 32 KiB ─▶ enclave
//! ```
//!
//! - **Back-pressure:** at most [`ClientConfig::max_in_flight`] requests are in flight; one
//!   more fails at once with [`ClientError::Saturated`] instead of waiting in a queue.
//! - **Deadlines:** each call waits at most [`ClientConfig::deadline`], then fails with
//!   [`ClientError::DeadlineExceeded`] (a late answer is dropped).
//! - **Failure:** when a connection dies every request pending on it fails at once with
//!   [`ClientError::Unavailable`]; its slot reconnects with exponential back-off
//!   ([`ClientConfig::backoff_min`] … [`ClientConfig::backoff_max`]). With no live connection
//!   a call fails at once, it never waits for one.
//! - **Handshake:** a new connection is used only after the enclave answered a
//!   [`Request::Hello`] with a version this build speaks.
//!
//! What it does *not* do: retry (a failed signing request may or may not have been signed:
//! the caller decides), or interpret answers: an enclave's [`Response::Error`] comes back as
//! `Ok(Response::Error(..))`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sigil_host::client::{ClientConfig, EnclaveAddr, EnclaveClient};
//! use sigil_protocol::Request;
//!
//! let addr: EnclaveAddr = "vsock://16:5000".parse()?;
//! let client = EnclaveClient::new(addr, ClientConfig::default());
//! let status = client.call(Request::Status).await?;
//! # let _ = status; Ok(()) }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sigil_enclave::runtime::{InProcessEnclave, write_frame};
use sigil_protocol::frame::{self, HEADER_LEN, MAX_PAYLOAD, MAX_SUPPORTED_VERSION, MIN_SUPPORTED_VERSION, TRAILER_LEN};
use sigil_protocol::{
    DecodeError, Deframer, Envelope, ErrorCode, FrameError, Hello, PROTOCOL_VERSION, Request, Response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use zeroize::{Zeroize, Zeroizing};

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Queued frames are coalesced into writes of about this size.
const WRITE_BATCH: usize = 16 * 1024;

/// Where the enclave is.
#[derive(Clone)]
#[non_exhaustive]
pub enum EnclaveAddr {
    /// A Unix socket (`unix:///path`): development, tests, or an enclave on the same machine.
    Unix(PathBuf),
    /// A vsock port (`vsock://CID:PORT`): an enclave in a TEE next to this host.
    Vsock {
        /// The enclave's context id.
        cid: u32,
        /// The port it listens on.
        port: u32,
    },
    /// An enclave in this process (simulation), reached through the real frame codec over an
    /// in-memory duplex.
    InProcess(InProcessEnclave),
}

impl fmt::Debug for EnclaveAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for EnclaveAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Self::InProcess(_) => f.write_str("in-process"),
        }
    }
}

/// Why a string is not an [`EnclaveAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrParseError {
    /// Neither `unix://` nor `vsock://`.
    #[error("expected vsock://CID:PORT or unix:///path")]
    UnknownScheme,
    /// `unix://` with nothing after it.
    #[error("unix:// needs a socket path")]
    EmptyPath,
    /// `vsock://` not followed by `CID:PORT` in decimal.
    #[error("vsock:// needs CID:PORT, both decimal numbers")]
    BadVsock,
}

impl FromStr for EnclaveAddr {
    type Err = AddrParseError;

    /// Parses `unix:///path` or `vsock://CID:PORT` (decimal `u32`s).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(AddrParseError::EmptyPath);
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let rest = s.strip_prefix("vsock://").ok_or(AddrParseError::UnknownScheme)?;
        let (cid, port) = rest.split_once(':').ok_or(AddrParseError::BadVsock)?;
        let (Some(cid), Some(port)) = (parse_decimal(cid), parse_decimal(port)) else {
            return Err(AddrParseError::BadVsock);
        };
        Ok(Self::Vsock { cid, port })
    }
}

/// A decimal `u32`, digits only (no sign, no spaces).
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Tuning of an [`EnclaveClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Persistent connections kept open (at least 1). Default 4.
    pub connections: usize,
    /// Requests in flight at once, over all connections. Default 1024.
    pub max_in_flight: usize,
    /// Calls that may wait (up to [`ClientConfig::deadline`]) for an in-flight slot when all
    /// are taken; one more fails at once with [`ClientError::Saturated`]. A bounded queue: a
    /// burst is absorbed, an overload is refused fast. Default 4096.
    pub max_queued: usize,
    /// How long one call may take, from sending to answer. Also bounds connecting and the
    /// handshake. Default 5 s.
    pub deadline: Duration,
    /// First wait before reconnecting a lost connection. Default 50 ms.
    pub backoff_min: Duration,
    /// Longest wait between reconnection attempts (the wait doubles up to it). Default 2 s.
    pub backoff_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connections: 4,
            max_in_flight: 1024,
            max_queued: 4096,
            deadline: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

impl ClientConfig {
    /// The values actually used: at least one connection and one permit, and
    /// `backoff_min ≤ backoff_max`.
    fn normalized(mut self) -> Self {
        self.connections = self.connections.max(1);
        self.max_in_flight = self.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        self.backoff_max = self.backoff_max.max(self.backoff_min);
        self
    }
}

/// Why a call got no answer from the enclave. Errors the enclave itself reports are not here:
/// they arrive as `Ok(Response::Error(..))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// [`ClientConfig::max_in_flight`] requests are in flight and [`ClientConfig::max_queued`]
    /// more are waiting (or the wait for a slot hit the deadline); nothing was sent.
    #[error("enclave saturated: too many requests in flight")]
    Saturated,
    /// No live connection, or the connection died with the request pending (the enclave may
    /// or may not have processed it).
    #[error("enclave unavailable")]
    Unavailable,
    /// No answer within [`ClientConfig::deadline`].
    #[error("enclave did not answer in time")]
    DeadlineExceeded,
    /// The request does not fit in one frame; nothing was sent.
    #[error("request exceeds the frame payload limit")]
    RequestTooLarge,
    /// The enclave's answer to this request could not be decoded.
    #[error("undecodable enclave response: {0}")]
    Protocol(DecodeError),
}

impl ClientError {
    /// The wire code the host reports: the enclave being unreachable, saturated or late is
    /// [`ErrorCode::EnclaveUnavailable`] (503); a request too large to frame is
    /// [`ErrorCode::PayloadTooLarge`]; an undecodable answer is [`ErrorCode::Internal`].
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Saturated | Self::Unavailable | Self::DeadlineExceeded => ErrorCode::EnclaveUnavailable,
            Self::RequestTooLarge => ErrorCode::PayloadTooLarge,
            Self::Protocol(_) => ErrorCode::Internal,
        }
    }
}

/// A snapshot of an [`EnclaveClient`]'s state, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Requests in flight now.
    pub in_flight: usize,
    /// Connections re-established after one was lost, since the client was created.
    pub reconnects: u64,
    /// Live connections now.
    pub connected: usize,
}

/// A pool of connections to one enclave. Cheap to clone; the connections close when the last
/// clone is dropped.
#[derive(Clone)]
pub struct EnclaveClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for EnclaveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveClient")
            .field("addr", &self.inner.shared.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Owned by the clones; stops the supervisors when the last one goes.
struct Inner {
    shared: Arc<Shared>,
    supervisors: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.supervisors {
            task.abort();
        }
    }
}

/// State shared by the callers and the supervisor tasks.
struct Shared {
    addr: EnclaveAddr,
    config: ClientConfig,
    /// One per connection: the live connection, if any.
    slots: Box<[Mutex<Option<Arc<Conn>>>]>,
    next_slot: AtomicUsize,
    permits: Semaphore,
    /// Calls waiting for a permit.
    queued: AtomicUsize,
    reconnects: AtomicU64,
}

impl EnclaveClient {
    /// Starts a client: one supervisor task per connection connects (and reconnects) in the
    /// background. It does not wait for a connection: until one is up, calls fail with
    /// [`ClientError::Unavailable`] (see [`EnclaveClient::is_connected`]).
    ///
    /// # Panics
    /// Outside a Tokio runtime (like `tokio::spawn`).
    #[must_use]
    pub fn new(addr: EnclaveAddr, config: ClientConfig) -> Self {
        let config = config.normalized();
        let shared = Arc::new(Shared {
            slots: (0..config.connections).map(|_| Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            permits: Semaphore::new(config.max_in_flight),
            queued: AtomicUsize::new(0),
            reconnects: AtomicU64::new(0),
            addr,
            config,
        });
        let supervisors =
            (0..shared.slots.len()).map(|slot| tokio::spawn(supervise(Arc::clone(&shared), slot))).collect();
        Self { inner: Arc::new(Inner { shared, supervisors }) }
    }

    /// Sends `body` to the enclave and waits for its answer.
    ///
    /// `Ok` holds whatever the enclave answered, including [`Response::Error`]: mapping its
    /// code is the caller's job. `Err` means there was no (usable) answer.
    ///
    /// Cancel-safe: dropping the future releases its in-flight slot (a late answer is
    /// discarded).
    pub async fn call(&self, body: Request) -> Result<Response, ClientError> {
        self.call_within(body, self.inner.shared.config.deadline).await
    }

    /// [`EnclaveClient::call`] with its own deadline instead of [`ClientConfig::deadline`]:
    /// for the rare calls that may legitimately take long (sealing on Nitro asks AWS KMS).
    pub async fn call_within(&self, body: Request, deadline: Duration) -> Result<Response, ClientError> {
        let shared = &*self.inner.shared;
        let started = tokio::time::Instant::now();
        let _permit = match shared.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                // Join the bounded queue, or refuse at once when it is full. The guard leaves
                // the queue even if this call is cancelled while waiting.
                let place = QueuePlace::join(&shared.queued, shared.config.max_queued).ok_or(ClientError::Saturated)?;
                let waited = tokio::time::timeout(deadline, shared.permits.acquire()).await;
                drop(place);
                match waited {
                    Ok(Ok(p)) => p,
                    _ => return Err(ClientError::Saturated),
                }
            }
        };
        let conn = shared.pick().ok_or(ClientError::Unavailable)?;
        // The deadline covers the whole call, queueing included.
        let left = deadline.saturating_sub(started.elapsed());
        conn.request(&body, left).await
    }

    /// Whether at least one connection is live (handshake done).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.inner.shared.slots.iter().any(|slot| lock(slot).is_some())
    }

    /// Requests in flight, reconnections so far, and live connections.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let shared = &self.inner.shared;
        ClientStats {
            in_flight: shared.config.max_in_flight.saturating_sub(shared.permits.available_permits()),
            reconnects: shared.reconnects.load(Ordering::Relaxed),
            connected: shared.slots.iter().filter(|slot| lock(slot).is_some()).count(),
        }
    }
}

/// A place in the bounded queue of calls waiting for an in-flight slot.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn join(queued: &'a AtomicUsize, max: usize) -> Option<Self> {
        let place = Self(queued);
        (queued.fetch_add(1, Ordering::AcqRel) < max).then_some(place)
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// A live connection, round-robin; `None` when there is none.
    fn pick(&self) -> Option<Arc<Conn>> {
        let n = self.slots.len();
        let start = self.next_slot.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| self.slots.get(start.wrapping_add(i) % n).and_then(|slot| lock(slot).clone()))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a waiting caller receives: the response, or why it could not be decoded.
type Reply = Result<Response, DecodeError>;

/// An encoded request frame. It carries the broker JWT, so it is wiped when dropped, whether
/// it was written or abandoned in the queue.
type RequestFrame = Zeroizing<Vec<u8>>;

/// One live connection, as seen by callers.
struct Conn {
    next_id: AtomicU64,
    frames: mpsc::Sender<RequestFrame>,
    pending: Mutex<Pending>,
}

struct Pending {
    /// Cleared when the connection dies: nothing may wait on it after that.
    open: bool,
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
}

impl Conn {
    fn new(frames: mpsc::Sender<RequestFrame>) -> Self {
        Self {
            // 0 is reserved: the enclave answers connection-level errors with request_id 0.
            next_id: AtomicU64::new(1),
            frames,
            pending: Mutex::new(Pending { open: true, waiters: HashMap::new() }),
        }
    }

    /// Sends one request on this connection and waits for its answer, at most `deadline`.
    async fn request(&self, body: &Request, deadline: Duration) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(id, body)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if !pending.open {
                return Err(ClientError::Unavailable);
            }
            pending.waiters.insert(id, tx);
        }
        // Removes the entry if we stop waiting before the reader delivered it (deadline,
        // cancellation, the writer gone).
        let mut waiting = Waiting { conn: self, id, armed: true };
        let exchange = async {
            self.frames.send(frame).await.map_err(|_| ClientError::Unavailable)?;
            let reply = rx.await;
            // Delivered or drained: the entry is gone either way.
            waiting.armed = false;
            match reply {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(ClientError::Protocol(e)),
                Err(_) => Err(ClientError::Unavailable),
            }
        };
        tokio::time::timeout(deadline, exchange).await.unwrap_or(Err(ClientError::DeadlineExceeded))
    }

    /// Hands a response to whoever waits for `id` (nobody, if it gave up).
    fn complete(&self, id: u64, reply: Reply) {
        let waiter = lock(&self.pending).waiters.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => tracing::debug!(request_id = id, "response for a request nobody waits for"),
        }
    }

    /// Marks the connection dead and fails everything pending on it.
    fn close(&self) {
        let waiters = {
            let mut pending = lock(&self.pending);
            pending.open = false;
            std::mem::take(&mut pending.waiters)
        };
        // Dropping the senders wakes every waiter with `Unavailable`.
        drop(waiters);
    }
}

struct Waiting<'a> {
    conn: &'a Conn,
    id: u64,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.conn.pending).waiters.remove(&self.id);
        }
    }
}

thread_local! {
    /// Serialisation scratch, so a request costs one allocation (its frame). Wiped after use.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Frames `Envelope { id, body }`.
fn encode_request(request_id: u64, body: &Request) -> Result<RequestFrame, ClientError> {
    let envelope = Envelope { request_id, body };
    let with_scratch = |scratch: &mut Vec<u8>| {
        if scratch.len() < MAX_PAYLOAD {
            scratch.resize(MAX_PAYLOAD, 0);
        }
        let Ok(payload) = postcard::to_slice(&envelope, scratch) else {
            scratch.zeroize();
            return Err(ClientError::RequestTooLarge);
        };
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN));
        let framed = frame::encode(PROTOCOL_VERSION, 0, payload, &mut out);
        payload.zeroize();
        framed.map_err(|_| ClientError::RequestTooLarge)?;
        Ok(out)
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => with_scratch(&mut scratch),
        // Not reachable (nothing here re-enters), but never panic over it.
        Err(_) => with_scratch(&mut Vec::new()),
    })
}

/// A byte stream to the enclave, whatever the transport.
trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

async fn connect(addr: &EnclaveAddr) -> io::Result<Box<dyn Transport>> {
    Ok(match addr {
        EnclaveAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        EnclaveAddr::Vsock { cid, port } => {
            let stream = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port)).await?;
            // The socket's own AF_VSOCK address: what the VM test (and an operator debugging a
            // deployment) reads to see that real vsock, not a Unix socket, carries the traffic.
            if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
                tracing::debug!(
                    local_cid = local.cid(),
                    local_port = local.port(),
                    peer_cid = peer.cid(),
                    peer_port = peer.port(),
                    "vsock connection to the enclave opened"
                );
            }
            Box::new(stream)
        }
        EnclaveAddr::InProcess(enclave) => Box::new(enclave.connect()?),
    })
}

/// Keeps slot `slot` connected for as long as the client lives.
async fn supervise(shared: Arc<Shared>, slot: usize) {
    let config = &shared.config;
    let mut backoff = config.backoff_min;
    let mut had_connection = false;
    let mut failures: u32 = 0;
    loop {
        let attempt = async {
            // A vsock connect to a CID nobody answers for can hang: bound it.
            let stream = tokio::time::timeout(config.deadline, connect(&shared.addr))
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))
                .map_err(Lost::Io)?;
            run_connection(&shared, slot, stream, had_connection).await
        };
        match attempt.await {
            Ok(lost) => {
                had_connection = true;
                failures = 0;
                backoff = config.backoff_min;
                tracing::warn!(enclave = %shared.addr, slot, reason = %lost, "enclave connection lost; reconnecting");
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                // Loud once, then quiet while the enclave stays away.
                if failures == 1 {
                    tracing::warn!(enclave = %shared.addr, slot, error = %e, "cannot connect to the enclave; retrying");
                } else {
                    tracing::debug!(enclave = %shared.addr, slot, error = %e, failures, "cannot connect to the enclave");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(config.backoff_max);
    }
}

/// Why a connection ended (or never became usable).
#[derive(Debug)]
enum Lost {
    Io(io::Error),
    Eof,
    Framing(FrameError),
    /// The enclave reported a connection-level error (request_id 0).
    Refused(ErrorCode),
    /// A frame whose payload is not even an envelope with a request id.
    Garbled,
    /// The handshake got something other than a usable `HelloAck`.
    Handshake(&'static str),
    HandshakeTimeout,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "i/o error: {e}"),
            Self::Eof => f.write_str("closed by the enclave"),
            Self::Framing(e) => write!(f, "framing error: {e}"),
            Self::Refused(code) => write!(f, "enclave reported a connection error: {code}"),
            Self::Garbled => f.write_str("undecodable response envelope"),
            Self::Handshake(why) => write!(f, "handshake failed: {why}"),
            Self::HandshakeTimeout => f.write_str("handshake timed out"),
        }
    }
}

/// Runs one connection: handshake, then serve callers until it dies. `Ok(reason)` once it
/// was live; `Err` if it never became usable.
async fn run_connection(
    shared: &Shared,
    slot: usize,
    stream: Box<dyn Transport>,
    is_reconnect: bool,
) -> Result<Lost, Lost> {
    let (rd, wr) = tokio::io::split(stream);
    // Every in-flight request occupies at most one queue slot, so senders rarely wait.
    let (tx, rx) = mpsc::channel(shared.config.max_in_flight);
    let conn = Arc::new(Conn::new(tx));
    // Whatever happens below (including this task being aborted), pending requests fail.
    let _close = CloseOnDrop(&conn);
    let io = drive(rd, wr, rx, &conn);
    tokio::pin!(io);

    let hello = Request::Hello(Hello { min_version: MIN_SUPPORTED_VERSION, max_version: MAX_SUPPORTED_VERSION });
    let version = tokio::select! {
        lost = &mut io => return Err(lost),
        answer = conn.request(&hello, shared.config.deadline) => handshake_version(answer)?,
    };

    let Some(slot_ref) = shared.slots.get(slot) else {
        return Err(Lost::Handshake("no such slot"));
    };
    if is_reconnect {
        // Counted before the connection is offered, so `is_connected` implies the count.
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(enclave = %shared.addr, slot, version, "enclave connection re-established");
    } else {
        tracing::debug!(enclave = %shared.addr, slot, version, "enclave connection established");
    }
    *lock(slot_ref) = Some(Arc::clone(&conn));
    // Declared after `_close`, so dropped before it: new callers stop picking this
    // connection before its pending requests are failed.
    let _vacate = VacateOnDrop(slot_ref);
    Ok(io.await)
}

fn handshake_version(answer: Result<Response, ClientError>) -> Result<u8, Lost> {
    match answer {
        Ok(Response::Hello(ack)) if (MIN_SUPPORTED_VERSION..=MAX_SUPPORTED_VERSION).contains(&ack.version) => {
            Ok(ack.version)
        }
        Ok(Response::Hello(_)) => Err(Lost::Handshake("the enclave chose a version outside our range")),
        Ok(Response::Error(e)) => Err(Lost::Refused(e.code)),
        Ok(_) => Err(Lost::Handshake("unexpected answer to hello")),
        Err(ClientError::DeadlineExceeded) => Err(Lost::HandshakeTimeout),
        Err(_) => Err(Lost::Handshake("no usable answer to hello")),
    }
}

struct CloseOnDrop<'a>(&'a Conn);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct VacateOnDrop<'a>(&'a Mutex<Option<Arc<Conn>>>);

impl Drop for VacateOnDrop<'_> {
    fn drop(&mut self) {
        *lock(self.0) = None;
    }
}

/// Reads and writes until the connection dies; returns why.
async fn drive<R, W>(rd: R, wr: W, rx: mpsc::Receiver<RequestFrame>, conn: &Conn) -> Lost
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::select! {
        lost = read_loop(rd, conn) => lost,
        lost = write_loop(wr, rx) => lost,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, conn: &Conn) -> Lost {
    let mut deframer = Deframer::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => return Lost::Eof,
            Ok(n) => n,
            Err(e) => return Lost::Io(e),
        };
        deframer.push(buf.get(..n).unwrap_or_default());
        loop {
            match deframer.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(lost) = deliver(conn, &frame) {
                        return lost;
                    }
                }
                Ok(None) => break,
                Err(e) => return Lost::Framing(e),
            }
        }
    }
}

/// Routes one response frame (already validated by the deframer) to its caller.
fn deliver(conn: &Conn, frame_bytes: &[u8]) -> Result<(), Lost> {
    let payload = frame::decode(frame_bytes).map_err(Lost::Framing)?.payload;
    match sigil_protocol::decode_payload::<Envelope<Response>>(payload) {
        Ok(Envelope { request_id: 0, body }) => {
            let code = match body {
                Response::Error(e) => e.code,
                _ => ErrorCode::Internal,
            };
            Err(Lost::Refused(code))
        }
        Ok(Envelope { request_id, body }) => {
            conn.complete(request_id, Ok(body));
            Ok(())
        }
        // The body is unreadable (e.g. a variant from a newer enclave): fail just that
        // request if its id is readable.
        Err(e) => match postcard::take_from_bytes::<u64>(payload) {
            Ok((request_id, _)) if request_id != 0 => {
                conn.complete(request_id, Err(e));
                Ok(())
            }
            _ => Err(Lost::Garbled),
        },
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<RequestFrame>) -> Lost {
    let mut frames: Vec<RequestFrame> = Vec::new();
    let mut batch: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    loop {
        // `Conn` holds the sender for as long as this loop runs, so `0` does not happen.
        if rx.recv_many(&mut frames, 64).await == 0 {
            return Lost::Eof;
        }
        let written = if let [one] = frames.as_slice() {
            write_frame(&mut wr, one).await
        } else {
            // Several waiting: coalesce them into fewer writes (still in < 32 KiB chunks).
            let mut result = Ok(());
            for frame in &frames {
                batch.extend_from_slice(frame);
                if batch.len() >= WRITE_BATCH {
                    result = write_all_chunks(&mut wr, &batch).await;
                    batch.zeroize();
                    if result.is_err() {
                        break;
                    }
                }
            }
            if result.is_ok() {
                result = write_frame(&mut wr, &batch).await;
            }
            batch.zeroize();
            result
        };
        // Dropping the frames wipes them.
        frames.clear();
        if let Err(e) = written {
            return Lost::Io(e);
        }
    }
}

/// [`write_frame`] without the flush.
async fn write_all_chunks<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> io::Result<()> {
    for chunk in frame::write_chunks(bytes) {
        wr.write_all(chunk).await?;
    }
    Ok(())
}
