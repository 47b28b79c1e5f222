//! One pass over a JSON line that finds repeated member names in any object, and reads
//! the top-level `id` on the way.
//!
//! serde ignores unknown members and keeps the last of two equal ones, so a line like
//! `{"type":"ping","zz":1,"zz":2}` would decode; the protocol rejects it. The pass
//! borrows keys from the line (no tree is built) and only objects cost anything beyond
//! serde_json's own scanning.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::MAX_ID_LEN;
use crate::frame::FrameId;

/// What [`scan`] found in a syntactically valid line.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The first top-level `id` member, if it is a valid id of at most
    /// [`MAX_ID_LEN`] bytes (longer ids are never echoed).
    pub id: Option<FrameId>,
    /// The first member name found twice in one object.
    pub duplicate: Option<String>,
}

/// Scans `text`; `Err` only for invalid JSON (including trailing data).
pub(crate) fn scan(text: &str) -> Result<Scan, serde_json::Error> {
    let mut found = Scan::default();
    let mut de = serde_json::Deserializer::from_str(text);
    Any {
        found: &mut found,
        top: true,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// Objects with more members than this are checked with a hash set; smaller ones (every
/// real frame) with a linear search, which is faster for a handful of short keys.
const LINEAR_KEYS: usize = 12;

/// The member names seen so far in one object.
struct Seen<'de> {
    /// The first names, in place (no allocation), searched linearly.
    few: [Cow<'de, str>; LINEAR_KEYS],
    /// How many of `few` are used.
    used: usize,
    /// Every name once there are more than `few` holds: a linear search would be
    /// quadratic in a hostile line.
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    /// No names yet.
    fn new() -> Self {
        Seen {
            few: Default::default(),
            used: 0,
            many: None,
        }
    }

    /// Records `key`; false if it was already there.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(key);
        }
        if self.few.iter().take(self.used).any(|k| *k == key) {
            return false;
        }
        match self.few.get_mut(self.used) {
            Some(slot) => {
                *slot = key;
                self.used += 1;
            }
            None => {
                let mut set: HashSet<_> = self.few.iter_mut().map(std::mem::take).collect();
                set.insert(key);
                self.many = Some(set);
            }
        }
        true
    }
}

/// Any JSON value: checks its objects, and at the top level reads the `id`.
struct Any<'a> {
    /// Where findings go.
    found: &'a mut Scan,
    /// True for the line's outermost value.
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Any<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Any<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Bounded by the line: each element consumes input.
        while seq
            .next_element_seed(Any {
                found: &mut *self.found,
                top: false,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::new();
        let mut id_seen = false;
        while let Some(key) = map.next_key_seed(Key)? {
            let is_id = self.top && key == "id";
            if !seen.insert(key.clone()) && self.found.duplicate.is_none() {
                self.found.duplicate = Some(key.into_owned());
            }
            if is_id && !id_seen {
                id_seen = true;
                self.found.id = map.next_value_seed(Id {
                    found: &mut *self.found,
                })?;
            } else {
                map.next_value_seed(Any {
                    found: &mut *self.found,
                    top: false,
                })?;
            }
        }
        Ok(())
    }
}

/// A member name, borrowed from the line unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

/// The value of the top-level `id`: a valid id, or `None` (still checked for repeats).
struct Id<'a> {
    /// Where repeats inside an invalid (object or array) id go.
    found: &'a mut Scan,
}

impl<'de> DeserializeSeed<'de> for Id<'_> {
    type Value = Option<FrameId>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<FrameId>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Id<'_> {
    type Value = Option<FrameId>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request id")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Option<FrameId>, E> {
        Ok(Some(FrameId::Num(n)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Option<FrameId>, E> {
        Ok((s.len() <= MAX_ID_LEN).then(|| FrameId::Str(s.to_owned())))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<FrameId>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<FrameId>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<FrameId>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<FrameId>, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<FrameId>, A::Error> {
        Any {
            found: self.found,
            top: false,
        }
        .visit_seq(seq)?;
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<FrameId>, A::Error> {
        Any {
            found: self.found,
            top: false,
        }
        .visit_map(map)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(text: &str) -> Option<String> {
        scan(text).expect("valid JSON").duplicate
    }

    #[test]
    fn repeats_are_found_at_any_depth() {
        assert_eq!(
            dup(r#"{"type":"ping","zz":1,"zz":2}"#).as_deref(),
            Some("zz")
        );
        assert_eq!(dup(r#"{"a":{"b":[{"c":1,"c":1}]}}"#).as_deref(), Some("c"));
        assert_eq!(dup(r#"{"id":{"x":1,"x":2}}"#).as_deref(), Some("x"));
        assert_eq!(dup(r#"[{"k":1},{"k":2,"k":3}]"#).as_deref(), Some("k"));
        assert_eq!(dup(r#"{"k\u0031":1,"k1":2}"#).as_deref(), Some("k1"));
    }

    #[test]
    fn equal_names_in_different_objects_are_fine() {
        assert_eq!(dup(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#), None);
        assert_eq!(dup(r#"{"type":"public","id":1,"text":"a\"b"}"#), None);
        assert_eq!(dup("[1,2,2]"), None);
    }

    #[test]
    fn many_members_switch_to_a_set_and_still_find_repeats() {
        let members: Vec<String> = (0..200).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let unique = format!("{{{}}}", members.join(","));
        assert_eq!(dup(&unique), None);
        let repeated = format!(r#"{{{},"k3":0}}"#, members.join(","));
        assert_eq!(dup(&repeated).as_deref(), Some("k3"));
    }

    #[test]
    fn the_first_valid_top_level_id_is_read() {
        let id = |t: &str| scan(t).expect("valid JSON").id;
        assert_eq!(id(r#"{"id":"a","id":"b"}"#), Some(FrameId::Str("a".into())));
        assert_eq!(id(r#"{"x":{"id":1},"id":2}"#), Some(FrameId::Num(2)));
        assert_eq!(id(r#"{"id":true,"id":"b"}"#), None);
        assert_eq!(id(r#"{"id":-1}"#), None);
        assert_eq!(id(r#"{"id":1.5}"#), None);
        assert_eq!(id(r#"{"id":null}"#), None);
        assert_eq!(
            id(&format!(r#"{{"id":"{}"}}"#, "i".repeat(MAX_ID_LEN + 1))),
            None
        );
        assert_eq!(id(r#"["id",1]"#), None);
    }

    #[test]
    fn invalid_json_is_an_error() {
        for bad in [r#"{"a":1"#, r#"{"a":1}x"#, "", r#"{"a":1,"a":}"#] {
            assert!(scan(bad).is_err(), "{bad}");
        }
    }
}
