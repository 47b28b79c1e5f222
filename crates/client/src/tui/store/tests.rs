use super::*;

fn room(name: &str) -> BufferKind {
    BufferKind::Room(name.into())
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line {i}")).collect()
}

#[test]
fn saved_and_loaded_per_buffer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter").join(FILE);
    let mut h = InputHistory::default();
    h.set(&room("Rust"), &["fn main()".into(), "/who".into()]);
    h.set(&BufferKind::Private("Bob".into()), &["hi bob".into()]);
    h.set(&BufferKind::Server, &["/rooms".into()]);
    h.save(&path).expect("saved");
    let back = InputHistory::load(&path).expect("loaded");
    assert_eq!(back, h);
    // Keys ignore case.
    assert_eq!(back.get(&room("rust")), ["fn main()", "/who"]);
    assert_eq!(back.get(&BufferKind::Private("bob".into())), ["hi bob"]);
    assert!(back.get(&room("other")).is_empty());
}

#[cfg(unix)]
#[test]
fn the_file_is_private_and_written_through_a_rename() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE);
    std::fs::write(&path, "old").expect("old file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut h = InputHistory::default();
    h.set(&room("lobby"), &["x".into()]);
    h.save(&path).expect("saved");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Only the file itself is left (no temporary file).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(FILE)]);
}

#[test]
fn a_missing_file_is_an_empty_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = InputHistory::load(&dir.path().join(FILE)).expect("loaded");
    assert_eq!(h, InputHistory::default());
}

#[test]
fn bounded_per_buffer_and_in_buffers() {
    let mut h = InputHistory::default();
    h.set(&room("big"), &lines(PER_BUFFER + 30));
    let kept = h.get(&room("big"));
    assert_eq!(kept.len(), PER_BUFFER);
    assert_eq!(kept[0], "line 30");
    for i in 0..BUFFERS {
        h.set(&room(&format!("r{i}")), &lines(1));
    }
    // The least recently used buffer went.
    assert!(h.get(&room("big")).is_empty());
    assert_eq!(h.get(&room("r0")), ["line 0"]);
    // Using a buffer again keeps it.
    h.set(&room("r0"), &lines(2));
    h.set(&room("new"), &lines(1));
    assert_eq!(h.get(&room("r0")).len(), 2);
    assert!(h.get(&room("r1")).is_empty());
    // Text parsed from a longer file is bounded the same way.
    let parsed = InputHistory::parse(
        &InputHistory {
            entries: vec![("#x".into(), lines(PER_BUFFER + 5))],
        }
        .to_text(),
    );
    assert_eq!(parsed.get(&room("x")).len(), PER_BUFFER);
}

#[test]
fn lines_that_cannot_be_stored_are_skipped_and_junk_is_ignored() {
    let mut h = InputHistory::default();
    h.set(&room("a"), &["ok".into(), "tab\there".into(), "  ".into()]);
    assert_eq!(h.get(&room("a")), ["ok"]);
    let parsed = InputHistory::parse("garbage\nnope\tx\n#a\tone\n@b\ttwo\n#a\tthree\n");
    assert_eq!(parsed.get(&room("a")), ["one", "three"]);
    assert_eq!(parsed.get(&BufferKind::Private("b".into())), ["two"]);
}

#[test]
fn the_model_keeps_typed_lines_for_buffers_opened_later() {
    use crate::tui::model::Model;
    let mut h = InputHistory::default();
    h.set(&room("rust"), &["earlier".into()]);
    let mut m = Model::new("alice", 0);
    m.set_input_history(h);
    m.on_frame(&natter_proto::ServerFrame::Joined {
        id: None,
        room: "rust".into(),
        members: vec!["alice".into()],
        more: 0,
    });
    m.history_up();
    assert_eq!(m.input.text(), "earlier");
    m.input.set("now");
    assert!(!m.history_dirty);
    m.enter();
    assert!(m.history_dirty);
    assert_eq!(m.input_history.get(&room("rust")), ["earlier", "now"]);
}
