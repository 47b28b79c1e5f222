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
/// The chat page's script.
pub const CHAT_JS: &str = include_str!("../../assets/chat.js");
/// The console page's script.
pub const CONSOLE_JS: &str = include_str!("../../assets/console.js");

const HTML: &str = "text/html; charset=utf-8";

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
        "chat.js" => page(CHAT_JS, "text/javascript; charset=utf-8"),
        "console.js" => page(CONSOLE_JS, "text/javascript; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
