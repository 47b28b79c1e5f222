//! Replays the fuzz corpus and every crash input the fuzzer ever found through the same
//! function the fuzz target runs, so CI covers them without running the fuzzer.

use std::path::PathBuf;

#[test]
fn fuzz_corpus_and_crash_inputs_decode_without_panicking() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["corpus/decode", "artifacts/decode", "regressions/decode"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            natter_proto::fuzzing::decode_bytes(&data);
            replayed += 1;
        }
    }
    assert!(
        replayed >= 10,
        "the seed corpus is missing ({replayed} inputs)"
    );
}
