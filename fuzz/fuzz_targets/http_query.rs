#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::fuzzing::http_query(data));
