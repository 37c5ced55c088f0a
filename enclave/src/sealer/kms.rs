//! AWS Nitro sealing through AWS KMS (feature `kms`, part of `nitro`): the `Recipient` flow.
//!
//! ```text
//! seal:   GenerateDataKey{KeyId, AES_256, Recipient{attestation doc(public_key = one-time RSA)}}
//!         → CiphertextBlob (stored in the blob's key handle) + CiphertextForRecipient
//!         → CMS-decrypt with the one-time key → data key → blob key (HKDF with salt, measurement)
//! unseal: Decrypt{CiphertextBlob, KeyId, Recipient{…}} → CiphertextForRecipient → same key
//! ```
//!
//! KMS releases the data key only inside the `CiphertextForRecipient` envelope, encrypted to
//! the RSA key in a *valid Nitro attestation document*, and the key policy
//! (`docs/OPERATIONS.md`) conditions `GenerateDataKey`/`Decrypt` on that document's PCRs. So
//! the data key reaches only an enclave running the pinned image: another build, a debug
//! enclave (PCRs all zero) or the host itself gets `AccessDeniedException`, and the blob does
//! not open (`reprovision_required`).
//!
//! Why the enclave talks to KMS itself, over TLS through the parent's `vsock-proxy`, instead
//! of letting the host relay the KMS call: the envelope is encryption, not a signature.
//! Anyone can encrypt to the public key in our attestation document, so a data key the host
//! handed in could be one the host chose — and a blob sealed under it would be readable by
//! the host. TLS from inside the enclave to `kms.<region>.amazonaws.com`, verified against
//! roots compiled into the (measured) image, is what authenticates the answer as KMS's.
//!
//! The key ARN and region are part of the enclave's command line, hence of its measurement:
//! a host cannot point the enclave at a key it controls.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

pub mod cms;
pub mod http;
pub mod imds;
pub mod sigv4;

use core::fmt;
use std::borrow::ToOwned as _;
use std::boxed::Box;
use std::format;
use std::string::{String, ToString as _};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use std::vec::Vec;

use base64ct::{Base64, Encoding as _};
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey as _;
use rustls::ClientConfig;
use sha2::{Digest as _, Sha512};
use sigil_protocol::Platform;
use zeroize::Zeroizing;

use self::http::Connector;
use self::imds::CredentialSource;
use super::{SealError, Sealer, derive_blob_key};
use crate::attester::{AttestationInput, Attester};

/// Size of the one-time RSA key (what KMS's `RSAES_OAEP_SHA_256` recipient requires).
const RSA_BITS: usize = 2048;
/// Length of the salt at the front of every key handle.
const SALT_LEN: usize = 32;
/// Longest KMS message text quoted in an error.
const MAX_MESSAGE: usize = 200;

/// Which KMS key, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// `us-east-1`, ...
    pub region: String,
    /// The full key ARN (not an alias: an alias can be re-pointed without changing the image).
    pub key_arn: String,
    /// The endpoint's host name (TLS server name and SigV4 `host`).
    pub host: String,
}

impl KmsConfig {
    /// The regional endpoint `kms.<region>.amazonaws.com` for `key_arn`, which must be a key
    /// ARN in that region.
    ///
    /// # Errors
    /// A one-line reason.
    pub fn new(region: &str, key_arn: &str) -> Result<Self, String> {
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("--kms-region {region:?}: expected a region such as us-east-1"));
        }
        let parts: Vec<&str> = key_arn.splitn(6, ':').collect();
        let [arn, partition, service, key_region, account, resource] = parts.as_slice() else {
            return Err(format!("--kms-key-arn {key_arn:?}: expected arn:aws:kms:REGION:ACCOUNT:key/ID"));
        };
        if *arn != "arn" || !partition.starts_with("aws") || *service != "kms" || !resource.starts_with("key/") {
            return Err(format!(
                "--kms-key-arn {key_arn:?}: expected a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias"
            ));
        }
        if *key_region != region || account.is_empty() {
            return Err(format!("--kms-key-arn {key_arn:?} is not a key in region {region}"));
        }
        let suffix = if *partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
        Ok(Self { region: region.to_owned(), key_arn: key_arn.to_owned(), host: format!("kms.{region}.{suffix}") })
    }
}

/// Seals under `HKDF(KMS data key, salt, "sigil/seal/v1" || PCR0‖PCR1‖PCR2)`; the key handle
/// is `salt || CiphertextBlob`.
pub struct KmsSealer {
    config: KmsConfig,
    measurement: Vec<u8>,
    attester: Box<dyn Attester>,
    credentials: Box<dyn CredentialSource>,
    kms: Box<dyn Connector>,
    tls: Arc<ClientConfig>,
}

impl fmt::Debug for KmsSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSealer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The parts of a KMS answer we read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KmsAnswer {
    #[serde(default)]
    ciphertext_blob: Option<String>,
    #[serde(default)]
    ciphertext_for_recipient: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    plaintext: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct KmsFault {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

impl KmsSealer {
    /// A sealer for the enclave measured as `measurement` (PCR0‖PCR1‖PCR2). `attester` makes
    /// the documents KMS checks (a second handle on the NSM); `kms` reaches the endpoint
    /// (the vsock proxy); `tls` holds the roots ([`http::tls_config`]).
    #[must_use]
    pub fn new(
        config: KmsConfig,
        measurement: Vec<u8>,
        attester: Box<dyn Attester>,
        credentials: Box<dyn CredentialSource>,
        kms: Box<dyn Connector>,
        tls: Arc<ClientConfig>,
    ) -> Self {
        Self { config, measurement, attester, credentials, kms, tls }
    }

    /// A one-time RSA key and the attestation document carrying its public half.
    fn recipient(&mut self) -> Result<(RsaPrivateKey, String), SealError> {
        let mut rng = rsa::rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(|e| SealError(format!("RSA key generation: {e}")))?;
        let spki =
            key.to_public_key().to_public_key_der().map_err(|e| SealError(format!("RSA public key encoding: {e}")))?;
        let user_data: [u8; 64] =
            Sha512::new_with_prefix(b"sigil/kms-recipient/v1").chain_update(spki.as_bytes()).finalize().into();
        let evidence = self
            .attester
            .attest(&AttestationInput {
                user_data: &user_data,
                nonce: &[],
                public_key: spki.as_bytes(),
                unix_time: now(),
            })
            .map_err(|e| SealError(e.to_string()))?;
        Ok((key, Base64::encode_string(&evidence.document)))
    }

    /// One signed KMS call.
    fn call(&mut self, target: &str, body: &serde_json::Value) -> Result<KmsAnswer, SealError> {
        let body = body.to_string();
        let credentials = self.credentials.credentials().map_err(SealError)?;
        let target_header = format!("TrentService.{target}");
        let scope =
            sigv4::Scope { host: &self.config.host, region: &self.config.region, service: "kms", unix_time: now() };
        let request = sigv4::Request {
            method: "POST",
            path: "/",
            headers: &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", &target_header)],
            body: body.as_bytes(),
        };
        let mut headers = sigv4::sign(&credentials, &scope, &request);
        headers.retain(|(name, _)| name != "host");
        let response =
            http::exchange(&*self.kms, Some(&self.tls), &self.config.host, "POST", "/", &headers, body.as_bytes())
                .map_err(|e| SealError(format!("KMS {target}: {e}")))?;
        if response.status != 200 {
            let fault: KmsFault = serde_json::from_slice(&response.body)
                .unwrap_or(KmsFault { kind: "unreadable error".into(), message: String::new() });
            let kind = fault.kind.rsplit('#').next().unwrap_or_default();
            let message: String = fault.message.chars().take(MAX_MESSAGE).collect();
            return Err(SealError(format!("KMS {target} refused (HTTP {}): {kind}: {message}", response.status)));
        }
        let answer: KmsAnswer = serde_json::from_slice(&response.body)
            .map_err(|e| SealError(format!("KMS {target}: {}", imds::json_category(&e))))?;
        if answer.key_id.as_deref() != Some(self.config.key_arn.as_str()) {
            return Err(SealError(format!("KMS {target} answered for another key than {}", self.config.key_arn)));
        }
        if answer.plaintext.as_ref().is_some_and(|p| !p.is_null()) {
            // Only possible if the Recipient was ignored: never use a key KMS sent in clear.
            return Err(SealError(format!("KMS {target} returned the key in plaintext; refusing it")));
        }
        Ok(answer)
    }

    /// Opens the `CiphertextForRecipient` of `answer` with `key`: a 32-byte data key.
    fn data_key(target: &str, answer: &KmsAnswer, key: &RsaPrivateKey) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let envelope = answer
            .ciphertext_for_recipient
            .as_deref()
            .ok_or_else(|| SealError(format!("KMS {target} answered without CiphertextForRecipient")))?;
        let envelope = Base64::decode_vec(envelope)
            .map_err(|_| SealError(format!("KMS {target}: CiphertextForRecipient is not base64")))?;
        let plaintext = cms::open(&envelope, key).map_err(|e| SealError(format!("KMS {target}: {e}")))?;
        let data_key: [u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| SealError(format!("KMS {target}: the data key is not 256 bits")))?;
        Ok(Zeroizing::new(data_key))
    }

    fn generate_data_key(&mut self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let (key, document) = self.recipient()?;
        let body = serde_json::json!({
            "KeyId": self.config.key_arn,
            "KeySpec": "AES_256",
            "Recipient": { "AttestationDocument": document, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256" },
        });
        let answer = self.call("GenerateDataKey", &body)?;
        let data_key = Self::data_key("GenerateDataKey", &answer, &key)?;
        let blob = answer
            .ciphertext_blob
            .as_deref()
            .and_then(|b| Base64::decode_vec(b).ok())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| SealError("KMS GenerateDataKey answered without a CiphertextBlob".into()))?;
        Ok((data_key, blob))
    }

    fn decrypt(&mut self, ciphertext_blob: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let (key, document) = self.recipient()?;
        let body = serde_json::json!({
            "CiphertextBlob": Base64::encode_string(ciphertext_blob),
            "KeyId": self.config.key_arn,
            "Recipient": { "AttestationDocument": document, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256" },
        });
        let answer = self.call("Decrypt", &body)?;
        Self::data_key("Decrypt", &answer, &key)
    }
}

impl Sealer for KmsSealer {
    fn platform(&self) -> Platform {
        Platform::Nitro
    }

    fn measurement(&self) -> &[u8] {
        &self.measurement
    }

    fn new_key(&mut self, salt: &[u8; 32]) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let (data_key, ciphertext_blob) = self.generate_data_key()?;
        let mut handle = salt.to_vec();
        handle.extend_from_slice(&ciphertext_blob);
        Ok((derive_blob_key(&data_key, salt, &self.measurement), handle))
    }

    fn key(&mut self, handle: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let (salt, ciphertext_blob) = handle
            .split_at_checked(SALT_LEN)
            .filter(|(_, blob)| !blob.is_empty())
            .ok_or_else(|| SealError("a KMS blob's key handle is a salt and a CiphertextBlob".into()))?;
        let data_key = self.decrypt(ciphertext_blob)?;
        Ok(derive_blob_key(&data_key, salt, &self.measurement))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_accepts_only_a_key_arn_in_its_region() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let c = KmsConfig::new("eu-west-1", arn).unwrap();
        assert_eq!(c.host, "kms.eu-west-1.amazonaws.com");
        assert!(KmsConfig::new("us-east-1", arn).is_err());
        assert!(KmsConfig::new("eu-west-1", "arn:aws:kms:eu-west-1:111122223333:alias/sigil").is_err());
        assert!(KmsConfig::new("eu-west-1", "1234abcd-12ab-34cd-56ef-1234567890ab").is_err());
        assert!(KmsConfig::new("EU west", arn).is_err());
        assert!(KmsConfig::new("eu-west-1", "arn:aws:s3:eu-west-1:111122223333:key/x").is_err());
        let cn = "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(KmsConfig::new("cn-north-1", cn).unwrap().host, "kms.cn-north-1.amazonaws.com.cn");
    }
}
