//! # sigil
//!
//! Client SDK and CLI of sigil, a TEE-ready enclave signer for agentKeys-style credential
//! brokers. Today it holds `sigil dev` (feature `sim`): the whole signer — HTTPS shim and
//! the real enclave code, simulated in-process — on localhost with nothing to configure.
//! The attested client (`sigil::Client`) arrives with the attestation work.
#![forbid(unsafe_code)]

#[cfg(feature = "sim")]
pub mod dev;

pub use sigil_protocol as protocol;
