//! Neutralising hostile text before any terminal shows it.
//!
//! Control characters (C0 except tab and newline, DEL, C1) would let one user drive
//! another user's terminal: ANSI escape sequences recolour, move the cursor, rewrite the
//! screen or set the window title. Bidirectional overrides can make text read differently
//! from what it is. All of them become U+FFFD; the rest of the text is left alone.

use std::borrow::Cow;

/// The replacement shown instead of a dangerous character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// True for characters that must never reach a terminal raw.
pub fn is_dangerous(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Replaces every dangerous character with U+FFFD; borrows when there is none.
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_dangerous(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_replaced() {
        assert_eq!(
            neutralize("\u{1b}[31mred\u{1b}[0m"),
            "\u{FFFD}[31mred\u{FFFD}[0m"
        );
        assert_eq!(
            neutralize("bell\u{7}del\u{7f}c1\u{9b}"),
            "bell\u{FFFD}del\u{FFFD}c1\u{FFFD}"
        );
        assert_eq!(neutralize("rtl\u{202E}txt"), "rtl\u{FFFD}txt");
        assert_eq!(neutralize("cr\rlf"), "cr\u{FFFD}lf");
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        let s = "héllo\tworld\nłódź 🎉";
        assert!(matches!(neutralize(s), Cow::Borrowed(_)));
    }
}
