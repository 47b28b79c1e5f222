//! Tests of the writer as a whole: what lands in which file, queue bounds, close.

use super::files::SYSTEM_LOG;
use super::testkit::*;
use super::*;
use std::collections::BTreeSet;
use std::fs;

#[tokio::test]
async fn conversations_rooms_and_system_events_are_logged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Transcript::start(logs.clone(), None).expect("start");
    t.record(Event::System {
        kind: "start",
        detail: "version=0.1.0".into(),
        ts_ms: TS,
    });
    t.record(Event::Private {
        from: "Alice".into(),
        to: "bob".into(),
        text: "hi bob".into(),
        ts_ms: TS,
    });
    t.record(Event::Private {
        from: "bob".into(),
        to: "alice".into(),
        text: "hi alice".into(),
        ts_ms: TS + 1,
    });
    t.record(Event::RoomPresence {
        room: "Lobby".into(),
        user: "alice".into(),
        joined: true,
        reason: None,
        ts_ms: TS + 2,
    });
    t.record(Event::Room {
        room: "lobby".into(),
        from: "alice".into(),
        text: "hello room".into(),
        ts_ms: TS + 3,
    });
    t.record(Event::RoomPresence {
        room: "lobby".into(),
        user: "alice".into(),
        joined: false,
        reason: Some("quit".into()),
        ts_ms: TS + 4,
    });
    t.record(Event::System {
        kind: "login_failed",
        detail: "user=mallory addr=1.2.3.4".into(),
        ts_ms: TS + 5,
    });
    flush(&t).await;

    let alice = read_lines(&logs.join("users/alice/bob.log"));
    let bob = read_lines(&logs.join("users/bob/alice.log"));
    assert_eq!(alice, bob, "both participants hold the same conversation");
    assert_eq!(
        alice,
        [
            "2026-11-22T02:31:23.123Z <Alice> -> <bob> hi bob",
            "2026-11-22T02:31:23.124Z <bob> -> <alice> hi alice",
        ]
    );
    assert_eq!(
        read_lines(&logs.join("rooms/lobby.log")),
        [
            "2026-11-22T02:31:23.125Z * alice joined",
            "2026-11-22T02:31:23.126Z <alice> hello room",
            "2026-11-22T02:31:23.127Z * alice left (quit)",
        ]
    );
    assert_eq!(
        read_lines(&logs.join(SYSTEM_LOG)),
        [
            "2026-11-22T02:31:23.123Z start version=0.1.0",
            "2026-11-22T02:31:23.125Z join room=Lobby user=alice",
            "2026-11-22T02:31:23.127Z leave room=lobby user=alice reason=quit",
            "2026-11-22T02:31:23.128Z login_failed user=mallory addr=1.2.3.4",
        ]
    );
    let mut files = all_files(&logs);
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    for file in files {
        for line in read_lines(&file) {
            split_line(&line);
        }
    }
    close(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recorders_produce_whole_lines() {
    const TASKS: usize = 8;
    const EACH: usize = 500;
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Arc::new(Transcript::start(logs.clone(), None).expect("start"));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let fill = char::from(b'a' + task as u8);
            for i in 0..EACH {
                // Every seventh text is ~4 KiB, to make a torn write show.
                let len = if i.is_multiple_of(7) { 4096 } else { 10 };
                let text = format!("t{task} n{i} {}", fill.to_string().repeat(len));
                t.record(Event::Room {
                    room: "lobby".into(),
                    from: format!("user{task}"),
                    text: text.clone(),
                    ts_ms: crate::clock::now_ms(),
                });
                t.record(Event::Private {
                    from: format!("user{task}"),
                    to: "sink".into(),
                    text,
                    ts_ms: crate::clock::now_ms(),
                });
                if i.is_multiple_of(50) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("recorder timed out")
            .expect("recorder panicked");
    }
    flush(&t).await;
    assert_eq!(t.dropped(), 0);

    let check = |line: &str, seen: &mut BTreeSet<(usize, usize)>| {
        let (_, rest) = split_line(line);
        let text = rest
            .rsplit_once("> ")
            .unwrap_or_else(|| panic!("no sender in {rest:?}"))
            .1;
        let mut words = text.split(' ');
        let task: usize = words
            .next()
            .and_then(|w| w.strip_prefix('t'))
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("bad task in {text:?}"));
        let i: usize = words
            .next()
            .and_then(|w| w.strip_prefix('n'))
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("bad index in {text:?}"));
        let fill = words
            .next()
            .unwrap_or_else(|| panic!("no fill in {text:?}"));
        let want = if i.is_multiple_of(7) { 4096 } else { 10 };
        let c = char::from(b'a' + task as u8);
        assert!(
            fill.len() == want && fill.chars().all(|x| x == c) && words.next().is_none(),
            "interleaved line: {line:.200}"
        );
        assert!(seen.insert((task, i)), "duplicate line {task}/{i}");
    };

    let room = read_lines(&logs.join("rooms/lobby.log"));
    assert_eq!(room.len(), TASKS * EACH);
    let mut seen = BTreeSet::new();
    for line in &room {
        check(line, &mut seen);
    }
    assert_eq!(seen.len(), TASKS * EACH);

    let mut seen = BTreeSet::new();
    let mut total = 0;
    for task in 0..TASKS {
        let mine = read_lines(&logs.join(format!("users/user{task}/sink.log")));
        let theirs = read_lines(&logs.join(format!("users/sink/user{task}.log")));
        assert_eq!(mine, theirs);
        total += mine.len();
        for line in &mine {
            check(line, &mut seen);
        }
    }
    assert_eq!(total, TASKS * EACH);
    assert_eq!(seen.len(), TASKS * EACH);
    close(&t).await;
}

// A current-thread runtime: the writer cannot run until the test awaits, so the
// queue fills deterministically.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Transcript::start_with(logs.clone(), None, 4).expect("start");
    for i in 0..10 {
        t.record(Event::System {
            kind: "test",
            detail: format!("n={i}"),
            ts_ms: TS,
        });
    }
    assert_eq!(t.dropped(), 6);
    flush(&t).await;
    assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 4);
    assert_eq!(t.counters.queued_bytes(), 0);
}

#[tokio::test]
async fn close_is_idempotent_and_later_events_are_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Transcript::start(logs.clone(), None).expect("start");
    t.record(Event::System {
        kind: "stop",
        detail: String::new(),
        ts_ms: TS,
    });
    close(&t).await;
    assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 1);
    close(&t).await;
    flush(&t).await;
    t.record(Event::System {
        kind: "late",
        detail: String::new(),
        ts_ms: TS,
    });
    assert_eq!(t.dropped(), 1);
    assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 1);
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        Transcript::start(tmp.path().join("logs"), None),
        Err(TranscriptError::NoRuntime)
    ));
}

/// A private message from `from` to `to` at `TS + n` ms.
fn private(from: &str, to: &str, text: &str, n: u64) -> Event {
    Event::Private {
        from: from.into(),
        to: to.into(),
        text: text.into(),
        ts_ms: TS + n,
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_conversation_is_one_file_under_both_names() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Transcript::start(logs.clone(), None).expect("start");
    // The larger name first: the file is still named after the smaller key first.
    t.record(private("zoe", "amy", "one", 0));
    flush(&t).await;
    t.record(private("amy", "zoe", "two", 1));
    t.record(private("zoe", "amy", "three", 2));
    flush(&t).await;
    let (amy, zoe) = (
        logs.join("users/amy/zoe.log"),
        logs.join("users/zoe/amy.log"),
    );
    let (a, z) = (
        fs::metadata(&amy).expect("amy's copy"),
        fs::metadata(&zoe).expect("zoe's copy"),
    );
    assert_eq!((a.dev(), a.ino()), (z.dev(), z.ino()), "one file");
    assert_eq!(a.nlink(), 2);
    let expected = [
        "2026-11-22T02:31:23.123Z <zoe> -> <amy> one",
        "2026-11-22T02:31:23.124Z <amy> -> <zoe> two",
        "2026-11-22T02:31:23.125Z <zoe> -> <amy> three",
    ];
    assert_eq!(read_lines(&amy), expected);
    assert_eq!(read_lines(&zoe), expected);
    // Emptied (say by an operator's rotation in place): still one file, one line each.
    fs::File::create(&amy).expect("truncate");
    t.record(private("amy", "zoe", "four", 3));
    flush(&t).await;
    assert_eq!(
        read_lines(&zoe),
        ["2026-11-22T02:31:23.126Z <amy> -> <zoe> four"]
    );
    assert_eq!(read_lines(&amy), read_lines(&zoe));
    close(&t).await;
}

#[tokio::test]
async fn copies_that_are_files_of_their_own_stay_separate_and_complete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let t = Transcript::start(logs.clone(), None).expect("start");
    t.record(private("amy", "bob", "before", 0));
    flush(&t).await;
    // An operator removes bob's copy: it comes back with new lines only, never with
    // the conversation it had.
    fs::remove_file(logs.join("users/bob/amy.log")).expect("remove");
    t.record(private("bob", "amy", "after", 1));
    flush(&t).await;
    assert_eq!(
        read_lines(&logs.join("users/bob/amy.log")),
        ["2026-11-22T02:31:23.124Z <bob> -> <amy> after"]
    );
    assert_eq!(
        read_lines(&logs.join("users/amy/bob.log")),
        [
            "2026-11-22T02:31:23.123Z <amy> -> <bob> before",
            "2026-11-22T02:31:23.124Z <bob> -> <amy> after",
        ]
    );
    // Logs written as two files (or the first name removed): both get every new line.
    let (cat, dan) = (
        logs.join("users/cat/dan.log"),
        logs.join("users/dan/cat.log"),
    );
    fs::create_dir_all(logs.join("users/dan")).expect("mkdir");
    fs::write(&dan, "old\n").expect("write");
    t.record(private("cat", "dan", "new", 2));
    flush(&t).await;
    assert_eq!(
        read_lines(&cat),
        ["2026-11-22T02:31:23.125Z <cat> -> <dan> new"]
    );
    assert_eq!(
        read_lines(&dan),
        ["old", "2026-11-22T02:31:23.125Z <cat> -> <dan> new"]
    );
    t.record(private("dan", "cat", "both", 3));
    flush(&t).await;
    assert_eq!(read_lines(&cat).len(), 2);
    assert_eq!(read_lines(&dan).len(), 3);
    close(&t).await;
}

#[tokio::test]
async fn chat_messages_wait_for_room_instead_of_being_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    // A queue of two events, and 200 messages from 4 senders at once.
    let t = Arc::new(Transcript::start_with(logs.clone(), None, 2).expect("start"));
    let mut senders = Vec::new();
    for s in 0..4u64 {
        let t = t.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..50u64 {
                let text = format!("s{s} m{i}");
                t.record_wait(private(&format!("user{s}"), "sink", &text, i))
                    .await;
            }
        }));
    }
    for s in senders {
        tokio::time::timeout(WAIT, s)
            .await
            .expect("senders finish")
            .expect("sender");
    }
    flush(&t).await;
    assert_eq!(t.dropped(), 0);
    for s in 0..4 {
        let lines = read_lines(&logs.join(format!("users/sink/user{s}.log")));
        let texts: Vec<&str> = lines.iter().map(|l| split_line(l).1).collect();
        let expected: Vec<String> = (0..50)
            .map(|i| format!("<user{s}> -> <sink> s{s} m{i}"))
            .collect();
        assert_eq!(texts, expected, "every message, in order");
    }
    close(&t).await;
    // Once the writer has stopped, waiting would be forever: the event is dropped.
    t.record_wait(private("user0", "sink", "late", 99)).await;
    assert_eq!(t.dropped(), 1);
}
