//! # sigil-attestation
//!
//! Verification of TEE evidence (AWS Nitro attestation documents, AMD SEV-SNP reports, and
//! sigil's simulated evidence) against pinned roots and a policy, as pure functions taking an
//! explicit `now`. Clients and peer enclaves use it before trusting an enclave with anything.
//!
//! This crate is filled by the attestation work (issue #4); it exists now so the workspace
//! has its final shape and dependency direction (`protocol` ← `enclave`, `attestation` ← host, root).
#![forbid(unsafe_code)]
