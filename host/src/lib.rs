//! # sigil-host
//!
//! The untrusted shim on the parent machine. It will terminate HTTPS, check the broker's JWT
//! and relay requests to the enclave over vsock (issue #3). Today it holds only the pieces
//! the enclave protocol needs on the host side.
//!
//! The host is *untrusted*: everything it relays is re-verified inside the enclave (the JWT)
//! or sealed end to end (the attested session, issue #4).
#![forbid(unsafe_code)]

pub use sigil_protocol as protocol;
