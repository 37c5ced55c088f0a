//! AWS Nitro Enclaves (feature `nitro`): attestation documents from the Nitro Secure Module
//! at `/dev/nsm`.
//!
//! The NSM returns a COSE_Sign1 document signed by the hypervisor's per-enclave key, whose
//! chain ends at the AWS Nitro root; it carries `user_data`, `nonce` and `public_key` exactly
//! as given. The document is passed on untouched: the certificates are inside it, so
//! [`Evidence::certificates`] stays empty. The driver crate does its `ioctl` (and its
//! `unsafe`) internally; nothing here needs any.

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use sigil_protocol::{Evidence, Platform};

use super::{AttestError, AttestationInput, Attester};

/// An open handle on the Nitro Secure Module, closed on drop.
pub struct NitroAttester {
    /// The `/dev/nsm` file descriptor from `nsm_init` (never negative here).
    fd: i32,
}

impl fmt::Debug for NitroAttester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NitroAttester").field("fd", &self.fd).finish()
    }
}

impl NitroAttester {
    /// Opens `/dev/nsm`. Fails outside a Nitro enclave (no such device).
    pub fn new() -> Result<Self, AttestError> {
        let fd = nsm_init();
        if fd < 0 {
            return Err(AttestError("cannot open /dev/nsm: not running in a Nitro enclave?".into()));
        }
        Ok(Self { fd })
    }
}

impl Drop for NitroAttester {
    fn drop(&mut self) {
        nsm_exit(self.fd);
    }
}

impl Attester for NitroAttester {
    fn platform(&self) -> Platform {
        Platform::Nitro
    }

    fn attest(&mut self, input: &AttestationInput<'_>) -> Result<Evidence, AttestError> {
        // The NSM distinguishes "absent" from "empty"; an empty field is sent as absent, which
        // the document then carries as CBOR null (what verifiers expect of an unused field).
        let optional = |bytes: &[u8]| (!bytes.is_empty()).then(|| bytes.to_vec().into());
        let request = Request::Attestation {
            user_data: Some(input.user_data.to_vec().into()),
            nonce: optional(input.nonce),
            public_key: optional(input.public_key),
        };
        match nsm_process_request(self.fd, request) {
            Response::Attestation { document } => {
                Ok(Evidence { platform: Platform::Nitro, document, certificates: Vec::new() })
            }
            Response::Error(code) => Err(AttestError(format!("the NSM refused the attestation request: {code:?}"))),
            _ => Err(AttestError("the NSM answered an attestation request with another response".into())),
        }
    }
}
