//! One HTTP/1.1 exchange per connection, over a blocking stream the runtime supplies: TLS
//! (rustls, roots compiled into the image) for KMS, plain for the instance metadata service.
//!
//! Inside a Nitro enclave there is no network, only vsock: the parent runs `vsock-proxy`,
//! which forwards a vsock port to one allowed TCP endpoint. TLS runs *inside* the enclave, end
//! to end with KMS, so the host relays bytes it can neither read nor alter; that is what lets
//! the enclave trust the data key KMS returns.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use core::fmt;
use std::borrow::ToOwned as _;
use std::boxed::Box;
use std::format;
use std::io::{self, Read, Write};
use std::string::{String, ToString as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Largest response accepted (KMS answers are about 2 KiB).
pub const MAX_RESPONSE: usize = 64 * 1024;
/// How long one read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long reading one response may take in all: a relay that trickles bytes (each read
/// under [`IO_TIMEOUT`]) cannot hold the enclave much longer than this.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);

/// A byte stream to one endpoint.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Opens a fresh stream to one fixed endpoint.
pub trait Connector: Send + Sync {
    /// A new connection.
    ///
    /// # Errors
    /// The endpoint cannot be reached.
    fn connect(&self) -> io::Result<Box<dyn Stream>>;
}

/// `vsock-proxy` on the parent instance (CID 3), one port per endpoint.
#[derive(Debug, Clone, Copy)]
pub struct VsockProxy {
    /// The parent's CID (3 on Nitro).
    pub cid: u32,
    /// The proxy's vsock port.
    pub port: u32,
}

impl Connector for VsockProxy {
    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        let stream = vsock::VsockStream::connect_with_cid_port(self.cid, self.port)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Box::new(stream))
    }
}

/// TCP to `addr` (tests, and parents that expose the proxy over TCP).
#[derive(Debug, Clone)]
pub struct Tcp(pub std::net::SocketAddr);

impl Connector for Tcp {
    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        let stream = std::net::TcpStream::connect_timeout(&self.0, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Box::new(stream))
    }
}

/// Why an exchange failed. Messages name the endpoint and the step, never a header value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, TLS or reading/writing failed.
    #[error("{host}: {source}")]
    Io {
        /// The endpoint.
        host: String,
        /// What failed.
        source: io::Error,
    },
    /// The response is not HTTP/1.1 we understand, or too large.
    #[error("{host}: malformed response: {reason}")]
    Malformed {
        /// The endpoint.
        host: String,
        /// What is wrong.
        reason: String,
    },
}

/// A response: status and body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may carry credentials (IMDS) or key material (KMS).
        f.debug_struct("Response").field("status", &self.status).finish_non_exhaustive()
    }
}

/// TLS client settings: ring (the enclave's crypto) and the Mozilla roots compiled in.
///
/// # Errors
/// No usable root (never with the bundled set).
pub fn tls_config(roots: Option<RootCertStore>) -> Result<Arc<ClientConfig>, String> {
    let roots = roots.unwrap_or_else(|| {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        store
    });
    if roots.is_empty() {
        return Err("no TLS roots".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One request. `tls`: `Some` for HTTPS to `host` (checked against the roots), `None` for
/// plain HTTP. `headers` must not contain `host`, `content-length` or `connection`.
///
/// # Errors
/// [`HttpError`].
pub fn exchange(
    connector: &dyn Connector,
    tls: Option<&Arc<ClientConfig>>,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let io = |source| HttpError::Io { host: host.to_owned(), source };
    let stream = connector.connect().map_err(io)?;
    let mut stream: Box<dyn Stream> = match tls {
        Some(config) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| HttpError::Malformed {
                host: host.to_owned(),
                reason: format!("not a server name: {e}"),
            })?;
            let conn =
                ClientConnection::new(Arc::clone(config), name).map_err(|e| io(io::Error::other(e.to_string())))?;
            Box::new(StreamOwned::new(conn, stream))
        }
        None => stream,
    };
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).map_err(io)?;
    stream.flush().map_err(io)?;
    read_response(&mut stream, Instant::now() + RESPONSE_DEADLINE).map_err(|e| match e {
        ReadError::Io(source) => HttpError::Io { host: host.to_owned(), source },
        ReadError::Malformed(reason) => HttpError::Malformed { host: host.to_owned(), reason },
    })
}

enum ReadError {
    Io(io::Error),
    Malformed(String),
}

/// Reads one response: headers, then a `content-length` or chunked body.
fn read_response(stream: &mut dyn Read, deadline: Instant) -> Result<Response, ReadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (status, header_len, length, chunked) = loop {
        let n = read_before(stream, &mut chunk, deadline)?;
        if n == 0 {
            return Err(ReadError::Malformed("connection closed before the headers ended".into()));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_RESPONSE {
            return Err(ReadError::Malformed("response too large".into()));
        }
        // Parse only once the blank line may have arrived: a sender trickling one byte per
        // read must not make this quadratic.
        let fresh = buf.get(buf.len().saturating_sub(n + 3)..).unwrap_or_default();
        if !fresh.windows(4).any(|w| w == b"\r\n\r\n") {
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let mut length = None;
                let mut chunked = false;
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = core::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
                        length = Some(v.ok_or_else(|| ReadError::Malformed("bad content-length".into()))?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    }
                }
                break (response.code.unwrap_or_default(), len, length, chunked);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(ReadError::Malformed(format!("bad headers: {e}"))),
        }
    };
    let mut body = buf.split_off(header_len);
    let body = if chunked {
        loop {
            if let Some(decoded) = dechunk(&body)? {
                break decoded;
            }
            read_more(stream, &mut body, &mut chunk, deadline)?;
        }
    } else {
        let length = length.ok_or_else(|| ReadError::Malformed("neither content-length nor chunked".into()))?;
        if length > MAX_RESPONSE {
            return Err(ReadError::Malformed("response too large".into()));
        }
        while body.len() < length {
            read_more(stream, &mut body, &mut chunk, deadline)?;
        }
        body.truncate(length);
        body
    };
    Ok(Response { status, body })
}

/// One read, refused once `deadline` has passed.
fn read_before(stream: &mut dyn Read, chunk: &mut [u8], deadline: Instant) -> Result<usize, ReadError> {
    if Instant::now() > deadline {
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::TimedOut, "response took too long")));
    }
    stream.read(chunk).map_err(ReadError::Io)
}

fn read_more(stream: &mut dyn Read, body: &mut Vec<u8>, chunk: &mut [u8], deadline: Instant) -> Result<(), ReadError> {
    let n = read_before(stream, chunk, deadline)?;
    if n == 0 {
        return Err(ReadError::Malformed("connection closed inside the body".into()));
    }
    body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    if body.len() > MAX_RESPONSE {
        return Err(ReadError::Malformed("response too large".into()));
    }
    Ok(())
}

/// The de-chunked body once `raw` holds the whole chunked encoding, `None` while incomplete.
fn dechunk(raw: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = core::str::from_utf8(rest.get(..line_end).unwrap_or_default())
            .map_err(|_| ReadError::Malformed("bad chunk size".into()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ReadError::Malformed("bad chunk size".into()))?;
        if size > MAX_RESPONSE {
            return Err(ReadError::Malformed("response too large".into()));
        }
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(Some(out));
        }
        let Some(data) = rest.get(..size) else { return Ok(None) };
        out.extend_from_slice(data);
        let Some(after) = rest.get(size + 2..) else { return Ok(None) };
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Response, ReadError> {
        // One byte per read: every partial state is exercised.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        read_response(&mut Trickle(raw), Instant::now() + RESPONSE_DEADLINE)
    }

    #[test]
    fn content_length_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").ok().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = parse(b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"abcde"[..]));
    }

    #[test]
    fn a_response_past_its_deadline_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let r = read_response(&mut &raw[..], Instant::now() - Duration::from_secs(1));
        assert!(matches!(r, Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::TimedOut));
    }

    #[test]
    fn malformed_and_oversized_responses_are_errors() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n\r\nno length").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(MAX_RESPONSE + 10, b'a');
        assert!(parse(&huge).is_err());
    }
}
