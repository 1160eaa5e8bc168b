//! Replays every committed input (`fuzz/corpus/<target>/*`, seeds and crash reproducers)
//! through its target: what was fixed stays fixed.

use gateway_fuzz::TARGETS;
use std::path::Path;

#[test]
fn every_corpus_input_keeps_its_targets_properties() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for t in TARGETS {
        let dir = root.join(t.name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 3,
            "{} has a corpus of {}",
            t.name,
            files.len()
        );
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let outcome = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(outcome.is_ok(), "{} fails on {}", t.name, f.display());
        }
    }
}
