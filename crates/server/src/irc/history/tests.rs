//! Tests of [`super`].

use super::*;
use crate::store::NewMessage;

fn params(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

#[test]
fn parses_subcommands_refs_and_limits() {
    let req = parse(&params("latest #a * 10")).expect("parses");
    assert_eq!(
        req,
        Request {
            sub: Sub::Latest,
            target: "#a".into(),
            first: MsgRef::Any,
            second: None,
            limit: 10,
        }
    );
    let req = parse(&params(
        "BETWEEN bob msgid=3 timestamp=2024-02-29T12:34:56.789Z 500",
    ))
    .expect("parses");
    assert_eq!(req.first, MsgRef::Id(3));
    assert_eq!(req.second, Some(MsgRef::Time(1_709_210_096_789)));
    assert_eq!(req.limit, MAX_LIMIT);
    let fail = |l: &str| parse(&params(l)).expect_err(l);
    assert_eq!(fail("BEFORE #a * 10").code, "INVALID_PARAMS");
    assert_eq!(fail("AFTER #a msgid=x 10").context, ["AFTER", "msgid=x"]);
    assert_eq!(fail("AROUND #a msgid=1 ten").code, "INVALID_PARAMS");
    assert_eq!(fail("BETWEEN #a msgid=1 5").context, ["BETWEEN"]);
    assert_eq!(fail("TARGETS x y 5").context, ["TARGETS"]);
    assert_eq!(fail("FOO #a * 1").context, ["FOO"]);
    assert_eq!(parse(&[]).expect_err("empty").context, Vec::<String>::new());
}

#[test]
fn timestamps_round_trip_with_server_time() {
    for ts in [
        0,
        999,
        1_709_210_096_789,
        4_102_444_800_000,
        951_782_400_123,
    ] {
        assert_eq!(parse_time(&line::server_time(ts)), Some(ts), "{ts}");
    }
    assert_eq!(parse_time("2024-01-01T00:00:00Z"), Some(1_704_067_200_000));
    assert_eq!(
        parse_time("2024-01-01T00:00:00.5Z"),
        Some(1_704_067_200_500)
    );
    for bad in [
        "2024-01-01T00:00:00",
        "2024-1-01T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.abcZ",
        "+024-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
    assert_eq!(parse_ref("msgid=12"), Some(MsgRef::Id(12)));
    assert_eq!(parse_ref("*"), Some(MsgRef::Any));
    assert_eq!(parse_ref("other=1"), None);
}

#[test]
fn batches_carry_tags_and_label() {
    let msgs = vec![
        StoredMessage {
            id: 7,
            room_seq: Some(1),
            msg: NewMessage {
                from: "bob".into(),
                target: Target::Room("lobby".into()),
                text: "hi".into(),
                ts: 0,
                client_id: None,
            },
        },
        StoredMessage {
            id: 9,
            room_seq: None,
            msg: NewMessage {
                from: "alice".into(),
                target: Target::User {
                    to: "bob".into(),
                    pending: false,
                },
                text: "yo".into(),
                ts: 1,
                client_id: None,
            },
        },
    ];
    let view = |batch: bool, slot: usize| View {
        server: "srv".into(),
        batch: batch.then(|| "H1".to_string()),
        label: label::of(Some("label=L")),
        slot,
    };
    let mut out = Vec::new();
    view(true, super::super::IRC_MSGID_SLOT).write("#Lobby", &msgs, &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "@label=L :srv BATCH +H1 chathistory #Lobby\r\n\
         @batch=H1;time=1970-01-01T00:00:00.000Z;msgid=7;account=bob :bob!bob@natter PRIVMSG #lobby :hi\r\n\
         @batch=H1;time=1970-01-01T00:00:00.001Z;msgid=9;account=alice :alice!alice@natter PRIVMSG bob :yo\r\n\
         :srv BATCH -H1\r\n"
    );
    let mut out = Vec::new();
    view(false, super::super::IRC_SLOT).write("#lobby", &msgs[..1], &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        ":bob!bob@natter PRIVMSG #lobby :hi\r\n"
    );
    let mut out = Vec::new();
    Fail::new("INVALID_TARGET", &["LATEST", "#x"], "no").write("srv", &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        ":srv FAIL CHATHISTORY INVALID_TARGET LATEST #x no\r\n"
    );
}

/// Stores `count` messages from `al` to `target`, 10 ms apart from `t0`; returns
/// their ids.
async fn store_some(store: &dyn Store, target: Target, t0: u64, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..count {
        let m = store
            .append_message(NewMessage {
                from: "al".into(),
                target: target.clone(),
                text: format!("m{i}"),
                ts: t0 + i as u64 * 10,
                client_id: None,
            })
            .await
            .expect("stored");
        ids.push(m.id);
    }
    ids
}

#[tokio::test]
async fn every_subcommand_on_rooms_and_conversations() {
    let (conn, _dir) = crate::irc::test_conn().await;
    let store = &*conn.shared.store;
    // Interleaved with another room's and another pair's messages, so ids have gaps.
    let room = Target::Room("r".into());
    let dm = Target::User {
        to: "bo".into(),
        pending: false,
    };
    let mut rooms = Vec::new();
    let mut dms = Vec::new();
    for i in 0..10u64 {
        rooms.extend(store_some(store, room.clone(), 1000 + i * 10, 1).await);
        store_some(store, Target::Room("other".into()), 1000 + i * 10, 1).await;
        dms.extend(store_some(store, dm.clone(), 1000 + i * 10, 1).await);
        store_some(
            store,
            Target::User {
                to: "cy".into(),
                pending: false,
            },
            1000 + i * 10,
            2,
        )
        .await;
    }
    let sources = [
        (Source::Room("r".into()), rooms),
        (
            Source::Private {
                me: "al".into(),
                with: "BO".into(),
            },
            dms,
        ),
    ];
    for (src, ids) in &sources {
        let ts = |i: usize| 1000 + i as u64 * 10;
        let ask = |line: String| {
            let req = parse(&params(&line)).expect("parses");
            let src = src.clone();
            async move {
                query(store, &src, &req)
                    .await
                    .expect("query")
                    .iter()
                    .map(|m| m.id)
                    .collect::<Vec<_>>()
            }
        };
        let time = |i: usize| format!("timestamp={}", line::server_time(ts(i)));
        let id = |i: usize| format!("msgid={}", ids[i]);
        assert_eq!(ask("LATEST x * 20".into()).await, ids[..]);
        assert_eq!(ask("LATEST x * 3".into()).await, ids[7..]);
        assert_eq!(ask(format!("LATEST x {} 20", id(4))).await, ids[5..]);
        assert_eq!(ask(format!("LATEST x {} 20", time(4))).await, ids[5..]);
        assert_eq!(ask(format!("BEFORE x {} 20", id(6))).await, ids[..6]);
        assert_eq!(ask(format!("BEFORE x {} 2", time(6))).await, ids[4..6]);
        assert_eq!(ask(format!("AFTER x {} 20", id(3))).await, ids[4..]);
        assert_eq!(ask(format!("AFTER x {} 3", time(3))).await, ids[4..7]);
        assert_eq!(ask(format!("AFTER x {} 1", id(0))).await, ids[1..2]);
        assert_eq!(ask(format!("AROUND x {} 1", id(7))).await, ids[7..8]);
        assert_eq!(ask(format!("AROUND x {} 3", id(7))).await, ids[6..9]);
        assert_eq!(ask(format!("AROUND x {} 3", time(7))).await, ids[6..9]);
        assert_eq!(
            ask(format!("BETWEEN x {} {} 20", id(0), id(9))).await,
            ids[1..9]
        );
        assert_eq!(
            ask(format!("BETWEEN x {} {} 3", id(0), id(9))).await,
            ids[1..4]
        );
        assert_eq!(
            ask(format!("BETWEEN x {} {} 3", id(9), id(0))).await,
            ids[6..9]
        );
        assert_eq!(
            ask(format!("BETWEEN x {} {} 3", time(9), time(0))).await,
            ids[6..9]
        );
        assert_eq!(
            ask(format!("BETWEEN x {} {} 20", time(0), time(9))).await,
            ids[1..9]
        );
        assert!(ask(format!("AFTER x {} 5", id(9))).await.is_empty());
        assert!(ask(format!("BEFORE x {} 5", time(0))).await.is_empty());
        assert!(ask("LATEST x * 0".into()).await.is_empty());
    }
}
