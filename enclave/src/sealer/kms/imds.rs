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
