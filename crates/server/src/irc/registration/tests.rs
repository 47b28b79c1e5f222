//! Tests of [`super`].

use super::*;

async fn conn() -> (Arc<Conn>, tempfile::TempDir) {
    let (c, dir) = crate::irc::test_conn().await;
    (Arc::new(c), dir)
}

/// What the connection queued for its writer so far (lines before the welcome).
fn written(c: &Conn) -> String {
    let mut text = String::new();
    while let Some(Out::Lines(b)) = c.direct.try_recv() {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    text
}

#[tokio::test]
async fn sasl_plain_yields_the_login_and_pass_waits_for_nick_and_user() {
    let (c, _dir) = conn().await;
    assert!(c.on_line(b"CAP LS 302").is_empty());
    assert!(
        written(&c).contains(
            "CAP * LS :account-tag away-notify batch cap-notify draft/account-registration=before-connect draft/chathistory echo-message labeled-response message-tags multi-prefix sasl=PLAIN server-time userhost-in-names"
        )
    );
    assert!(c.on_line(b"AUTHENTICATE PLAIN").is_empty());
    assert_eq!(written(&c), ":natter AUTHENTICATE +\r\n");
    // "\0al\0pw"
    let frames = c.on_line(b"AUTHENTICATE AGFsAHB3");
    assert!(
        matches!(&frames[..], [Ok(ClientFrame::Auth { user, password, .. })] if user == "al" && password == "pw")
    );

    let (c, _dir) = conn().await;
    assert!(c.on_line(b"PASS :al:pw with spaces").is_empty());
    assert!(c.on_line(b"NICK al").is_empty());
    let frames = c.on_line(b"USER al 0 * :Al");
    assert!(
        matches!(&frames[..], [Ok(ClientFrame::Auth { user, password, .. })] if user == "al" && password == "pw with spaces")
    );
}

#[tokio::test]
async fn registration_has_a_line_budget() {
    let (c, _dir) = conn().await;
    for _ in 0..MAX_REGISTRATION_LINES {
        assert!(c.on_line(b"NICK someone").is_empty());
    }
    let last = c.on_line(b"NICK someone");
    assert!(matches!(&last[..], [Err(InputError::Io(_))]));
    assert!(written(&c).ends_with("ERROR :Closing link: too many lines before logging in\r\n"));
}
