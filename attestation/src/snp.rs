//! AMD SEV-SNP attestation reports (being written).
