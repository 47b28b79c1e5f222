//! Tests of the parent module: the back-off policy and the outbox, without sleeping.

use super::*;
use rand::rngs::StdRng;

#[test]
fn delays_double_from_one_second_up_to_a_minute() {
    let nominal: Vec<u64> = (1..=9)
        .map(|attempt| backoff_delay(attempt, 0.5).as_millis() as u64)
        .collect();
    assert_eq!(
        nominal,
        [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
    );
    // Far attempts neither overflow nor exceed the cap.
    assert_eq!(backoff_delay(u32::MAX, 0.5), MAX_DELAY);
    assert_eq!(
        backoff_delay(0, 0.5),
        FIRST_DELAY,
        "attempt 0 counts as the first"
    );
}

#[test]
fn jitter_stays_within_a_quarter_and_under_the_cap() {
    assert_eq!(backoff_delay(1, 0.0), Duration::from_millis(750));
    assert_eq!(backoff_delay(3, 0.0), Duration::from_millis(3000));
    assert_eq!(backoff_delay(3, 1.0), Duration::from_millis(5000));
    assert_eq!(backoff_delay(7, 0.0), Duration::from_secs(45));
    assert_eq!(
        backoff_delay(7, 0.99),
        MAX_DELAY,
        "capped, never above a minute"
    );
    // Out-of-range units are clamped rather than trusted.
    assert_eq!(backoff_delay(1, -3.0), Duration::from_millis(750));
    assert_eq!(backoff_delay(1, 7.0), Duration::from_millis(1250));
}

#[test]
fn a_seeded_backoff_is_reproducible_and_jittered() {
    let delays = |seed| {
        let mut backoff = Backoff::with_rng(StdRng::seed_from_u64(seed));
        (1..=10).map(|a| backoff.delay(a)).collect::<Vec<_>>()
    };
    let a = delays(7);
    assert_eq!(a, delays(7), "the same seed gives the same waits");
    assert_ne!(a, delays(8), "another seed gives other waits");
    for (i, d) in a.iter().enumerate() {
        let nominal = backoff_delay(i as u32 + 1, 0.5);
        assert!(
            *d >= nominal.mul_f64(0.75) && *d <= nominal.mul_f64(1.25).min(MAX_DELAY),
            "attempt {}: {d:?} around {nominal:?}",
            i + 1
        );
    }
    // Jitter really varies: ten first attempts are not all the same.
    let mut backoff = Backoff::with_rng(StdRng::seed_from_u64(1));
    let firsts: std::collections::HashSet<_> = (0..10).map(|_| backoff.delay(1)).collect();
    assert!(firsts.len() > 1);
}

#[test]
fn status_line_rounds_to_whole_seconds() {
    assert_eq!(
        waiting_line(Duration::from_millis(2400), 3),
        "-- connection lost; reconnecting in 2 s (attempt 3) --"
    );
    assert_eq!(
        waiting_line(Duration::from_millis(750), 1),
        "-- connection lost; reconnecting in 1 s (attempt 1) --"
    );
}

#[test]
fn client_ids_are_fresh_hex_within_the_protocol_limit() {
    let a = client_id();
    let b = client_id();
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert!(a.len() <= natter_proto::MAX_ID_LEN);
    assert_ne!(a, b);
}

fn public(text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: Some("lobby".into()),
        text: text.into(),
        client_id: None,
    }
}

#[test]
fn the_outbox_keeps_messages_until_ok_queued_or_error() {
    let mut outbox = Outbox::new();
    let one = outbox.stamp(public("one"), "c-one".into());
    let two = outbox.stamp(
        ClientFrame::Private {
            id: None,
            to: "bob".into(),
            text: "two".into(),
            client_id: None,
        },
        "c-two".into(),
    );
    let three = outbox.stamp(public("three"), "c-three".into());
    assert_eq!(
        one,
        ClientFrame::Public {
            id: Some(FrameId::Str("m1".into())),
            room: Some("lobby".into()),
            text: "one".into(),
            client_id: Some("c-one".into()),
        }
    );
    assert_eq!(outbox.len(), 3);
    // Other frames pass unchanged and are not kept.
    assert_eq!(
        outbox.stamp(ClientFrame::List { id: None }, "x".into()),
        ClientFrame::List { id: None }
    );
    assert_eq!(outbox.len(), 3);

    // Frames about other requests change nothing.
    outbox.on_frame(&ServerFrame::Ok {
        id: FrameId::Num(1),
    });
    outbox.on_frame(&ServerFrame::Error {
        id: None,
        code: ErrorCode::Internal,
        message: "x".into(),
        retry_after_ms: None,
    });
    assert_eq!(outbox.len(), 3);

    outbox.on_frame(&ServerFrame::Queued {
        id: Some(FrameId::Str("m2".into())),
        msg_id: 4,
        to: "bob".into(),
    });
    assert_eq!(
        outbox.pending().cloned().collect::<Vec<_>>(),
        [one, three.clone()]
    );
    outbox.on_frame(&ServerFrame::Ok {
        id: FrameId::Str("m1".into()),
    });
    assert_eq!(outbox.pending().cloned().collect::<Vec<_>>(), [three]);
    outbox.on_frame(&ServerFrame::Error {
        id: Some(FrameId::Str("m3".into())),
        code: ErrorCode::NotInRoom,
        message: "x".into(),
        retry_after_ms: None,
    });
    assert!(outbox.is_empty());
    let _ = two;
}

#[test]
fn refused_logins_and_changed_certificates_stop_the_retrying() {
    let refused = |code| ClientError::Refused {
        code,
        message: "no".into(),
    };
    assert!(matches!(
        classify(refused(ErrorCode::AuthFailed)),
        Failure::Fatal(_)
    ));
    assert!(matches!(
        classify(refused(ErrorCode::Banned)),
        Failure::Fatal(_)
    ));
    assert!(matches!(classify(ClientError::Closed), Failure::Retry(_)));
    assert!(matches!(
        classify(refused(ErrorCode::TooManyConnections)),
        Failure::Retry(_)
    ));
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert!(matches!(
        classify(ClientError::Connect {
            addr: "x".into(),
            source: io
        }),
        Failure::Retry(_)
    ));
}

#[test]
fn credentials_never_show_the_password() {
    let c = Credentials {
        user: "alice".into(),
        password: "hunter2-secret".into(),
    };
    assert!(!format!("{c:?}").contains("hunter2"));
}
