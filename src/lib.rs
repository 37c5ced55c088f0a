//! # sigil
//!
//! Client SDK and CLI of sigil, a TEE-ready enclave signer for agentKeys-style credential
//! brokers:
//!
//! - [`Client`]: an attested session to a signer — it verifies the enclave's evidence
//!   against a [`Policy`] and then derives, signs and opens KEKs through a channel the host
//!   relays but cannot read or alter;
//! - the `sigil` CLI: `verify`, `attest`, `policy`, and `dev` (feature `sim`: the whole
//!   signer — HTTPS shim and the real enclave code, simulated in-process — on localhost).
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;

#[cfg(feature = "sim")]
pub mod dev;

pub use client::{Client, ClientError, ClientOptions};
pub use sigil_attestation::{self as attestation, Policy, Verified};
pub use sigil_protocol as protocol;
