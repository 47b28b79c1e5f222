//! Fuzz target: arbitrary bytes through natter's line codec and frame decoders.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    natter_proto::fuzzing::decode_bytes(data);
});
