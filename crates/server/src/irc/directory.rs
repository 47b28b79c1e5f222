//! What IRC knows about a user that natter does not: the user name and real name from
//! USER, AWAY messages and operator status (OPER). Owned by the gateway and shared by
//! its connections; WHO and WHOIS read it, and users of natter's other clients (which
//! have none of these) are shown with their name in every field.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use natter_proto::name_key;

/// One user's IRC details, shared by the user's IRC connections (the last USER wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The nick (the account name, as natter spells it).
    pub nick: String,
    /// The user name given with USER.
    pub ident: String,
    /// The real name given with USER.
    pub realname: String,
    /// The AWAY message, if away.
    pub away: Option<String>,
    /// Logged in as an IRC operator (OPER).
    pub oper: bool,
    /// A conformance-test guest: shown as not logged in to an account.
    pub guest: bool,
    /// When the user's first IRC connection registered (ms since the epoch).
    pub signon_ms: u64,
    /// Open IRC connections of this user.
    conns: usize,
}

impl Profile {
    /// A profile for a user's IRC connection.
    pub fn new(nick: &str, ident: &str, realname: &str, guest: bool, signon_ms: u64) -> Profile {
        Profile {
            nick: nick.to_string(),
            ident: ident.to_string(),
            realname: realname.to_string(),
            away: None,
            oper: false,
            guest,
            signon_ms,
            conns: 0,
        }
    }

    /// A user with no IRC connection (natter's own clients, the browser): the name in
    /// every field.
    pub fn of_natter_user(nick: &str) -> Profile {
        Profile::new(nick, nick, nick, false, 0)
    }
}

/// The IRC users' profiles, by account.
#[derive(Debug, Default)]
pub struct Directory {
    users: Mutex<HashMap<String, Profile>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Directory {
        Directory::default()
    }

    /// Holds no invariant a panic could break halfway; a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Profile>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an IRC connection of `profile.nick`; the user name and real name replace
    /// those of the user's other connections.
    pub fn register(&self, profile: Profile) {
        let mut users = self.lock();
        let entry = users
            .entry(name_key(&profile.nick))
            .or_insert_with(|| profile.clone());
        entry.ident = profile.ident;
        entry.realname = profile.realname;
        entry.conns += 1;
    }

    /// Forgets one IRC connection of `nick`; the profile goes with the last one.
    pub fn unregister(&self, nick: &str) {
        let mut users = self.lock();
        let key = name_key(nick);
        if let Some(p) = users.get_mut(&key) {
            p.conns = p.conns.saturating_sub(1);
            if p.conns == 0 {
                users.remove(&key);
            }
        }
    }

    /// The profile of `nick`, if the user has an IRC connection.
    pub fn get(&self, nick: &str) -> Option<Profile> {
        self.lock().get(&name_key(nick)).cloned()
    }

    /// Changes `nick`'s profile, if the user has an IRC connection.
    pub fn update(&self, nick: &str, change: impl FnOnce(&mut Profile)) {
        if let Some(p) = self.lock().get_mut(&name_key(nick)) {
            change(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_live_as_long_as_a_connection() {
        let d = Directory::new();
        d.register(Profile::new("Al", "al", "Al A", false, 1));
        d.register(Profile::new("Al", "al2", "Al B", false, 2));
        d.update("al", |p| p.away = Some("lunch".into()));
        let p = d.get("AL").expect("registered");
        assert_eq!((p.ident.as_str(), p.realname.as_str()), ("al2", "Al B"));
        assert_eq!(p.away.as_deref(), Some("lunch"));
        d.unregister("al");
        assert!(d.get("al").is_some());
        d.unregister("al");
        assert!(d.get("al").is_none());
        assert_eq!(Profile::of_natter_user("bo").realname, "bo");
    }
}
