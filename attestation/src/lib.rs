//! # sigil-attestation
//!
//! Verification of TEE evidence (AWS Nitro attestation documents, AMD SEV-SNP reports, and
//! sigil's simulated evidence) against pinned roots and a policy, as pure functions taking an
//! explicit `now`. Clients and peer enclaves use it before trusting an enclave with anything.
#![forbid(unsafe_code)]

pub mod nitro;
pub mod snp;
