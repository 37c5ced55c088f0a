//! AWS Nitro Enclaves attestation documents (being written).
