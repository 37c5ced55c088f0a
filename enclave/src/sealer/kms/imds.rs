//! The parent instance's role credentials, from the EC2 instance metadata service (IMDSv2)
//! through a `vsock-proxy` on the parent.
//!
//! These credentials are the host's anyway: they let a caller *ask* KMS, while the key
//! policy's attestation condition decides whether the answer is usable (only inside an
//! enclave with the pinned measurement). Nothing here is trusted beyond that.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use std::borrow::ToOwned as _;
use std::boxed::Box;
use std::format;
use std::string::{String, ToString as _};
use std::vec;

use zeroize::Zeroizing;

use super::http::{self, Connector};
use super::sigv4::Credentials;

/// Where AWS credentials come from.
pub trait CredentialSource: Send {
    /// Current credentials.
    ///
    /// # Errors
    /// A one-line reason (no secret in it).
    fn credentials(&mut self) -> Result<Credentials, String>;
}

/// Fixed credentials (tests).
#[derive(Debug)]
pub struct Static(pub Credentials);

impl CredentialSource for Static {
    fn credentials(&mut self) -> Result<Credentials, String> {
        Ok(self.0.clone())
    }
}

/// IMDSv2 at `169.254.169.254`, reached through `connector`.
pub struct Imds {
    connector: Box<dyn Connector>,
}

impl core::fmt::Debug for Imds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Imds").finish_non_exhaustive()
    }
}

const HOST: &str = "169.254.169.254";
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";

impl Imds {
    /// IMDS through `connector`.
    #[must_use]
    pub fn new(connector: Box<dyn Connector>) -> Self {
        Self { connector }
    }

    fn get(&self, path: &str, token: &str) -> Result<Zeroizing<String>, String> {
        let headers = vec![("x-aws-ec2-metadata-token".to_owned(), token.to_owned())];
        let r = http::exchange(&*self.connector, None, HOST, "GET", path, &headers, b"")
            .map_err(|e| format!("instance metadata: {e}"))?;
        let body = Zeroizing::new(r.body);
        if r.status != 200 {
            return Err(format!("instance metadata {path}: HTTP {}", r.status));
        }
        String::from_utf8(body.to_vec()).map(Zeroizing::new).map_err(|_| format!("instance metadata {path}: not UTF-8"))
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

impl CredentialSource for Imds {
    fn credentials(&mut self) -> Result<Credentials, String> {
        let headers = vec![("x-aws-ec2-metadata-token-ttl-seconds".to_owned(), "60".to_owned())];
        let r = http::exchange(&*self.connector, None, HOST, "PUT", "/latest/api/token", &headers, b"")
            .map_err(|e| format!("instance metadata token: {e}"))?;
        if r.status != 200 {
            return Err(format!("instance metadata token: HTTP {}", r.status));
        }
        let token = Zeroizing::new(String::from_utf8(r.body).map_err(|_| "instance metadata token: not UTF-8")?);
        let roles = self.get(ROLE_PATH, &token)?;
        let role = roles.lines().next().map(str::trim).filter(|r| !r.is_empty() && !r.contains('/'));
        let role = role.ok_or("the instance has no IAM role (instance profile) for KMS")?;
        let json = self.get(&format!("{ROLE_PATH}{role}"), &token)?;
        let creds: RoleCredentials =
            serde_json::from_str(&json).map_err(|e| format!("instance metadata credentials: {}", json_category(&e)))?;
        if creds.code.as_deref().is_some_and(|c| c != "Success") {
            return Err("instance metadata credentials: not Success".to_string());
        }
        Ok(Credentials {
            access_key_id: creds.access_key_id,
            secret_access_key: Zeroizing::new(creds.secret_access_key),
            session_token: creds.token.map(Zeroizing::new),
        })
    }
}

/// Only the category: serde_json's message could quote the (secret) input.
pub(super) fn json_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected fields",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::sealer::kms::http::Tcp;

    /// A plain-HTTP IMDSv2: one request per connection, answered from `answer(method, path,
    /// token header)`; returns the port and the requests it saw.
    fn mock(
        answer: fn(&str, &str, Option<&str>) -> (u16, &'static str),
    ) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let text = String::from_utf8(buf).unwrap();
                let mut words = text.split_whitespace();
                let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                let token = text.lines().find_map(|l| l.strip_prefix("x-aws-ec2-metadata-token: ")).map(str::trim);
                let (status, body) = answer(method, path, token);
                tx.send(format!("{method} {path} token={}", token.unwrap_or("-"))).ok();
                let response = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                stream.write_all(response.as_bytes()).ok();
            }
        });
        (addr, rx)
    }

    const CREDENTIALS: &str = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE",
        "SecretAccessKey":"secret/EXAMPLE","Token":"session-token","Expiration":"2026-11-22T18:00:00Z"}"#;

    fn honest(method: &str, path: &str, token: Option<&str>) -> (u16, &'static str) {
        match (method, path, token) {
            ("PUT", "/latest/api/token", None) => (200, "tok-123"),
            (_, _, Some(t)) if t != "tok-123" => (401, ""),
            ("GET", "/latest/meta-data/iam/security-credentials/", _) => (200, "sigil-parent\n"),
            ("GET", "/latest/meta-data/iam/security-credentials/sigil-parent", _) => (200, CREDENTIALS),
            _ => (404, ""),
        }
    }

    #[test]
    fn reads_the_role_credentials_with_an_imdsv2_token() {
        let (addr, seen) = mock(honest);
        let creds = Imds::new(Box::new(Tcp(addr))).credentials().unwrap();
        assert_eq!(creds.access_key_id, "ASIAEXAMPLE");
        assert_eq!(creds.secret_access_key.as_str(), "secret/EXAMPLE");
        assert_eq!(creds.session_token.as_deref().map(String::as_str), Some("session-token"));
        let seen: Vec<String> = seen.try_iter().collect();
        assert_eq!(
            seen,
            [
                "PUT /latest/api/token token=-",
                "GET /latest/meta-data/iam/security-credentials/ token=tok-123",
                "GET /latest/meta-data/iam/security-credentials/sigil-parent token=tok-123",
            ]
        );
        // Debug never shows the secret.
        assert!(!format!("{creds:?}").contains("secret/EXAMPLE"));
    }

    #[test]
    fn failures_are_one_line_reasons_without_the_secret() {
        fn no_role(method: &str, path: &str, token: Option<&str>) -> (u16, &'static str) {
            if path == "/latest/meta-data/iam/security-credentials/" { (200, "") } else { honest(method, path, token) }
        }
        fn garbled(method: &str, path: &str, token: Option<&str>) -> (u16, &'static str) {
            if path.ends_with("/sigil-parent") {
                (200, r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret/EXAMPLE""#)
            } else {
                honest(method, path, token)
            }
        }
        fn no_token(_: &str, _: &str, _: Option<&str>) -> (u16, &'static str) {
            (403, "")
        }
        for (answer, expected) in [
            (no_role as fn(&str, &str, Option<&str>) -> (u16, &'static str), "no IAM role"),
            (garbled, "credentials: truncated"),
            (no_token, "token: HTTP 403"),
        ] {
            let (addr, _) = mock(answer);
            let e = Imds::new(Box::new(Tcp(addr))).credentials().unwrap_err();
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains("secret/EXAMPLE"), "{e}");
        }
    }
}
