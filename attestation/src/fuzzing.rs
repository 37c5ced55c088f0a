//! Fuzz entry points (`fuzz/fuzz_targets/{nitro_document,snp_report}.rs` are three-line
//! wrappers around these); also run as unit tests over the real documents.

/// Parses and verifies arbitrary bytes as a Nitro document. Must never panic.
pub fn nitro_document(data: &[u8]) {
    crate::nitro::fuzz_document(data);
}

/// Parses and verifies arbitrary bytes as an SEV-SNP report. Must never panic.
pub fn snp_report(data: &[u8]) {
    crate::snp::fuzz_report(data);
}
