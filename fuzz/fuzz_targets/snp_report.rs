#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_attestation::fuzzing::snp_report(data));
