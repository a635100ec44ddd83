#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::fuzzing::rtsp_request(data));
