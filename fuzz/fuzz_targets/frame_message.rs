#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_protocol::fuzzing::frame_and_message(data));
