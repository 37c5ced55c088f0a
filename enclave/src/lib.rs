//! # sigil-enclave
//!
//! The part of sigil that runs inside the TEE. It holds the master secret K3 and answers
//! derive-address, EIP-191 and EIP-712 signing and KEK derivation, byte-for-byte as the
//! agentKeys signer it replaces.
//!
//! The core is **sans-IO** and `#![no_std]` + `alloc`: [`Enclave::handle`] takes one request
//! frame and returns one response frame; time and randomness come from an [`Env`] passed in.
//! The same code therefore runs on Nitro, SEV-SNP, in simulation and under deterministic
//! tests. Transports (Unix socket, vsock, in-memory duplex) live in [`runtime`] behind the
//! `std` feature and are thin: read frame → `handle` → write frame.
//!
//! ```text
//!  host ──frame──▶ Enclave::handle(frame, env) ──▶ frame ──▶ host
//!                     │ decode envelope (sigil-protocol)
//!                     │ verify broker JWT (jwt, cached by SHA-256)
//!                     │ K3 epoch (k3) ─▶ wallet (wallet, cached) ─▶ eip191 / eip712 digest ─▶ sign
//!                     └ K3 epoch ─▶ kek ─▶ HPKE seal to the caller
//! ```
//!
//! What it does *not* do: trust the host. Every K3-using request carries the broker JWT and
//! is authorised here, against a broker key that is part of the enclave's configuration.
//!
//! ```
//! use sigil_enclave::{Config, Enclave, FixedEnv, K3, jwt::BrokerKey};
//! use sigil_protocol::{decode_message, encode_message, Envelope, Request, Response};
//!
//! # let broker = BrokerKey::from_sec1(&[4; 65]).unwrap();
//! let mut enclave = Enclave::new(Config::new(broker));
//! enclave.load_k3(1, K3::from_bytes([7; 32]));
//! let req = encode_message(&Envelope { request_id: 1, body: Request::Status }).unwrap();
//! let resp: Envelope<Response> = decode_message(&enclave.handle(&req, &mut FixedEnv::new(0))).unwrap();
//! assert!(matches!(resp.body, Response::Status(s) if s.current_key_version == Some(1)));
//! ```
//!
//! Features: `std` (default: the runtime and the `sigil-enclave` binary), `sim` (simulation
//! transports and the simulated attester), `nitro` / `snp` (the platform attesters, see
//! [`attester`]). Without `std` the crate is
//! `no_std`.
#![no_std]
#![warn(clippy::indexing_slicing)]
// no_std hygiene (std-only modules opt out explicitly).
#![warn(clippy::std_instead_of_core, clippy::std_instead_of_alloc, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod attester;
mod cache;
pub mod eip191;
pub mod eip712;
mod enclave;
pub mod env;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod json;
pub mod jwt;
pub mod k3;
pub mod kek;
pub mod peer;
pub mod sealer;
pub mod transfer;
pub mod wallet;

#[cfg(feature = "std")]
pub mod runtime;

pub use enclave::{Config, Enclave};
pub use env::{EntropyUnavailable, Env, FixedEnv};
pub use error::{Error, InternalError};
pub use k3::K3;
