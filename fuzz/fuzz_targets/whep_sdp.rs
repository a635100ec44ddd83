#![no_main]

// The WHEP offer → answer path (our codec choice around str0m's SDP), the
// trickle-ice-sdpfrag parser and the STUN ufrag peek of the shared port.
libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate::fuzzing::whep_sdp(data));
