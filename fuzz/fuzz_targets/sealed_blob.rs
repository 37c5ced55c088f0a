#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_enclave::fuzzing::sealed_blob(data));
