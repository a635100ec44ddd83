#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::ingest::rtp::fuzz_rfc4571(data));
