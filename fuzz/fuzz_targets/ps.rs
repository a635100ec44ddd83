#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::ingest::ps::fuzz_entry(data));
