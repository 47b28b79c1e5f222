//! User name rules, shared by the server (which enforces them) and clients (which can
//! check before sending).

/// Longest allowed user name, in characters.
pub const MAX_USERNAME_LEN: usize = 32;

/// Why a user name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("user name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_USERNAME_LEN`].
    #[error("user name must be at most {MAX_USERNAME_LEN} characters")]
    TooLong,
    /// The name contains a character outside `A-Z a-z 0-9 _ -`.
    #[error("user name may only contain ASCII letters, digits, '_' and '-'")]
    BadChar,
}

/// Checks that `name` is 1-32 ASCII letters, digits, `_` or `-`.
///
/// Names are unique case-insensitively; compare them with [`name_key`].
pub fn validate_username(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_USERNAME_LEN {
        return Err(NameError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(NameError::BadChar);
    }
    Ok(())
}

/// The room everyone is in after logging in.
pub const DEFAULT_ROOM: &str = "lobby";

/// Validates a room name and returns its canonical form: one optional leading `#`
/// removed, then the user-name rules, case-folded (`#Rust` → `rust`).
pub fn parse_room(name: &str) -> Result<String, NameError> {
    let bare = name.strip_prefix('#').unwrap_or(name);
    validate_username(bare)?;
    Ok(name_key(bare))
}

/// The case-folded form under which a valid name is unique.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in ["a", "Alice_1", "bob-smith", &"x".repeat(32)] {
            assert_eq!(validate_username(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        assert_eq!(validate_username(""), Err(NameError::Empty));
        assert_eq!(validate_username(&"x".repeat(33)), Err(NameError::TooLong));
        for n in ["a b", "../etc", "é", "a/b", "a\u{1b}[31m", "a.b", "a\n"] {
            assert_eq!(validate_username(n), Err(NameError::BadChar), "{n:?}");
        }
    }

    #[test]
    fn room_names_fold_case_and_drop_one_hash() {
        assert_eq!(parse_room("#Rust"), Ok("rust".into()));
        assert_eq!(parse_room("lobby"), Ok("lobby".into()));
        assert_eq!(parse_room("##x"), Err(NameError::BadChar));
        assert_eq!(parse_room("#"), Err(NameError::Empty));
        assert_eq!(parse_room("../x"), Err(NameError::BadChar));
    }

    #[test]
    fn keys_fold_case() {
        assert_eq!(name_key("AliCe"), name_key("alice"));
    }
}
