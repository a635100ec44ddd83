#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::fuzzing::web_inputs(data));
