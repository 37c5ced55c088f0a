//! # sigil
//!
//! Client SDK and CLI of sigil, a TEE-ready enclave signer for agentKeys-style credential
//! brokers. This crate re-exports the wire protocol; the attested client (`sigil::Client`)
//! arrives with the attestation work.
#![forbid(unsafe_code)]

pub use sigil_protocol as protocol;
