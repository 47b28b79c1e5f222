//! What IRC knows about a user that natter does not: the user name and real name from
//! USER, AWAY messages and operator status (OPER). Owned by the gateway and shared by
//! its connections; WHO and WHOIS read it, and users of natter's other clients (which
//! have none of these) are shown with their name in every field.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use natter_proto::name_key;

use super::Conn;
use super::encode::mask;
use super::line;
use crate::bus::Bus;

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

/// The IRC users' profiles, by account, and their connections.
#[derive(Default)]
pub struct Directory {
    users: Mutex<HashMap<String, Profile>>,
    /// Each user's open IRC connections (for away-notify).
    conns: Mutex<HashMap<String, Vec<Weak<Conn>>>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
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

    /// Records the IRC connection `conn` of `profile.nick`; the user name and real name
    /// replace those of the user's other connections.
    pub fn register(&self, profile: Profile, conn: Weak<Conn>) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name_key(&profile.nick))
            .or_default()
            .push(conn);
        let mut users = self.lock();
        let entry = users
            .entry(name_key(&profile.nick))
            .or_insert_with(|| profile.clone());
        entry.ident = profile.ident;
        entry.realname = profile.realname;
        entry.conns += 1;
    }

    /// Forgets the IRC connection `conn` of `nick`; the profile goes with the last one.
    pub fn unregister(&self, nick: &str, conn: &Weak<Conn>) {
        let key = name_key(nick);
        {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = conns.get_mut(&key) {
                list.retain(|c| !c.ptr_eq(conn) && c.strong_count() > 0);
                if list.is_empty() {
                    conns.remove(&key);
                }
            }
        }
        let mut users = self.lock();
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

impl Directory {
    /// Tells the IRC users who share a room with `nick` and negotiated away-notify that
    /// `nick` is away (`message`) or back (`None`): `:nick!user@host AWAY [:message]`.
    /// Each is told once, however many rooms they share.
    pub fn notify_away(&self, bus: &dyn Bus, nick: &str, message: Option<&str>) {
        let mut out = Vec::new();
        let source = mask(nick);
        match message {
            Some(m) => line::write(&mut out, None, &source, "AWAY", &[m]),
            None => line::write(&mut out, None, &source, "AWAY", &[]),
        }
        // Who to tell, from the hub; then their connections, without holding both locks.
        let mut told = HashSet::from([name_key(nick)]);
        let mut keys = Vec::new();
        for room in bus.rooms_of(nick) {
            for name in bus.who(&room).map(|m| m.names).unwrap_or_default() {
                let key = name_key(&name);
                if told.insert(key.clone()) {
                    keys.push(key);
                }
            }
        }
        let to: Vec<Arc<Conn>> = {
            let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter()
                .filter_map(|k| conns.get(k))
                .flatten()
                .filter_map(Weak::upgrade)
                .filter(|c| c.away_notify.load(Ordering::Relaxed))
                .collect()
        };
        for conn in to {
            conn.emit(out.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_live_as_long_as_a_connection() {
        let d = Directory::new();
        d.register(Profile::new("Al", "al", "Al A", false, 1), Weak::new());
        d.register(Profile::new("Al", "al2", "Al B", false, 2), Weak::new());
        d.update("al", |p| p.away = Some("lunch".into()));
        let p = d.get("AL").expect("registered");
        assert_eq!((p.ident.as_str(), p.realname.as_str()), ("al2", "Al B"));
        assert_eq!(p.away.as_deref(), Some("lunch"));
        d.unregister("al", &Weak::new());
        assert!(d.get("al").is_some());
        d.unregister("al", &Weak::new());
        assert!(d.get("al").is_none());
        assert_eq!(Profile::of_natter_user("bo").realname, "bo");
    }
}
