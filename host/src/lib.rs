//! # sigil-host
//!
//! The untrusted shim on the parent machine. It terminates HTTPS, speaks the agentKeys
//! signer protocol v0 (SPEC §2) so an existing daemon only changes its *signer URL*, checks
//! the broker's JWT, and relays each request to the enclave over a pool of persistent
//! connections (vsock, Unix socket, or in-process for simulation).
//!
//! ```text
//!  daemon ──HTTPS──▶ server (rustls, hyper) ──▶ api (axum: parse → JWT → limit → validate)
//!                                                 │
//!                                                 ▼
//!                              client (pool, request_id mux, deadline, back-off)
//!                                                 │ frames
//!                                                 ▼
//!                                  sigil-enclave (vsock / unix / in-process)
//! ```
//!
//! The host is *untrusted*: the enclave re-verifies every JWT itself; nothing the host does
//! can make the enclave sign for an account the broker did not authorise. The host's own
//! check keeps unauthenticated load off the enclave.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod client;
pub mod custody;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod server;

pub use sigil_protocol as protocol;
