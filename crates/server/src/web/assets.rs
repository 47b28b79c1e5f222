//! The pages, scripts and style sheet, embedded in the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The browser chat page.
pub const CHAT_HTML: &str = include_str!("../../assets/chat.html");
/// The operator console page.
pub const CONSOLE_HTML: &str = include_str!("../../assets/console.html");
/// Shared style sheet.
pub const CSS: &str = include_str!("../../assets/natter.css");
/// The chat page's script: its entry point (typed lines and commands), a module that
/// imports the other `CHAT_*_JS` modules.
pub const CHAT_JS: &str = include_str!("../../assets/chat.js");
/// Chat module: the shared state, the page's elements and small helpers.
pub const CHAT_STATE_JS: &str = include_str!("../../assets/chat-state.js");
/// Chat module: message text, links, mentions and notifications.
pub const CHAT_TEXT_JS: &str = include_str!("../../assets/chat-text.js");
/// Chat module: the conversations.
pub const CHAT_CONV_JS: &str = include_str!("../../assets/chat-conv.js");
/// Chat module: the connection (login, outbox, reconnecting, catching up).
pub const CHAT_LINK_JS: &str = include_str!("../../assets/chat-link.js");
/// Chat module: the frames from the server.
pub const CHAT_FRAMES_JS: &str = include_str!("../../assets/chat-frames.js");
/// The console page's script.
pub const CONSOLE_JS: &str = include_str!("../../assets/console.js");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /chat`.
pub async fn chat_page() -> Response {
    page(CHAT_HTML, HTML)
}

/// `GET /console`.
pub async fn console_page() -> Response {
    page(CONSOLE_HTML, HTML)
}

/// `GET /static/{file}`: only the embedded files exist.
pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "natter.css" => page(CSS, "text/css; charset=utf-8"),
        "chat.js" => page(CHAT_JS, JS),
        "chat-state.js" => page(CHAT_STATE_JS, JS),
        "chat-text.js" => page(CHAT_TEXT_JS, JS),
        "chat-conv.js" => page(CHAT_CONV_JS, JS),
        "chat-link.js" => page(CHAT_LINK_JS, JS),
        "chat-frames.js" => page(CHAT_FRAMES_JS, JS),
        "console.js" => page(CONSOLE_JS, JS),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
