#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_attestation::fuzzing::nitro_document(data));
