#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_enclave::fuzzing::typed_data(data));
