//! Tests of [`super`].

use tokio::sync::mpsc;

use super::*;

async fn conn() -> (Arc<Conn>, mpsc::UnboundedReceiver<Out>, tempfile::TempDir) {
    let (c, rx, dir) = crate::irc::test_conn().await;
    (Arc::new(c), rx, dir)
}

fn written(rx: &mut mpsc::UnboundedReceiver<Out>) -> String {
    let mut text = String::new();
    while let Ok(Out::Lines(b)) = rx.try_recv() {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    text
}

#[tokio::test]
async fn sasl_plain_yields_the_login_and_pass_waits_for_nick_and_user() {
    let (c, mut rx, _dir) = conn().await;
    assert!(c.on_line(b"CAP LS 302").is_empty());
    assert!(
        written(&mut rx).contains(
            "CAP * LS :account-tag away-notify batch cap-notify draft/account-registration=before-connect draft/chathistory echo-message labeled-response message-tags multi-prefix sasl=PLAIN server-time userhost-in-names"
        )
    );
    assert!(c.on_line(b"AUTHENTICATE PLAIN").is_empty());
    assert_eq!(written(&mut rx), ":natter AUTHENTICATE +\r\n");
    // "\0al\0pw"
    let frames = c.on_line(b"AUTHENTICATE AGFsAHB3");
    assert!(
        matches!(&frames[..], [Ok(ClientFrame::Auth { user, password, .. })] if user == "al" && password == "pw")
    );

    let (c, _rx, _dir) = conn().await;
    assert!(c.on_line(b"PASS :al:pw with spaces").is_empty());
    assert!(c.on_line(b"NICK al").is_empty());
    let frames = c.on_line(b"USER al 0 * :Al");
    assert!(
        matches!(&frames[..], [Ok(ClientFrame::Auth { user, password, .. })] if user == "al" && password == "pw with spaces")
    );
}

#[tokio::test]
async fn registration_has_a_line_budget() {
    let (c, mut rx, _dir) = conn().await;
    for _ in 0..MAX_REGISTRATION_LINES {
        assert!(c.on_line(b"NICK someone").is_empty());
    }
    let last = c.on_line(b"NICK someone");
    assert!(matches!(&last[..], [Err(InputError::Io(_))]));
    assert!(
        written(&mut rx).ends_with("ERROR :Closing link: too many lines before logging in\r\n")
    );
}
