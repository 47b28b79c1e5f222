//! IRC's questions about other users and rooms, answered by the adapter itself: WHO
//! (and IRCv3 WHOX), WHOIS, NAMES and LIST. Presence and membership come from the hub
//! through [`Bus`](crate::bus::Bus), user names, real names, away and operator status
//! from the gateway's [`Directory`] (users of natter's other clients have none: their
//! name fills every field).
//!
//! - **WHO** `#room` lists the room's members (channel field `#room`); `WHO nick` one
//!   online user; a mask with `*` or `?` (or `*`, `0`, nothing) the users whose nick (or
//!   `nick!user@host`, if the mask holds `!` or `@`) matches, among those who share a
//!   room with the asker, and the asker: every user is `+i` (invisible), as `MODE nick`
//!   says, so masks do not search the whole server. natter has no channel operators, so
//!   flags are `H`/`G` (away) and `*` (IRC operator), never `@`. `WHO <mask> %fields` is
//!   WHOX (354).
//! - **WHOIS** `[server] nick`: 311, 312, 313, 301, 330 (not for conformance-test
//!   guests, who have no account to speak of), 318; 401 for a nick not online. natter
//!   does not track idle time, so there is no 317; nor 319, whose channels clients
//!   expect with operator prefixes.
//! - **NAMES** `#a[,#b]`: 353s and a 366 per room, `nick!user@host` with
//!   `userhost-in-names`; a room without members, or an invalid name, gets just 366.
//! - **LIST** `[filters]`: 321, a 322 per room (`#room users :`, natter rooms have no
//!   topic), 323. `ELIST=MNU`: masks, `!`masks and `<n`/`>n` user counts; rooms keep
//!   no creation or topic time, so no `C` or `T`.
//!
//! Each answer is bounded: at most [`MAX_REPLIES`] users or [`MAX_ROOMS`] rooms, and a
//! mask is matched only against the members of the asker's own rooms.
//!
//! Locks: these run with the connection's state locked (from `Conn::on_line`), and
//! take the hub's lock (through the bus) and the directory's, one at a time. The hub
//! encodes only fanned-out frames under its lock, and those never take a connection's
//! state lock (see `encode.rs`), so state → hub is the only order there is.

use natter_proto::{MAX_NAMES, MAX_ROOMS, RoomInfo, name_key, parse_room, validate_username};

use super::commands::MAX_TARGETS;
use super::directory::{Directory, Profile};
use super::line::{MAX_BODY, Message};
use super::registration::{State, numeric};
use super::{Conn, USER_HOST};

/// Users listed by one WHO at most (a room's members are capped at this by the hub).
pub const MAX_REPLIES: usize = MAX_NAMES;

/// The ELIST token of ISUPPORT: the LIST filters [`list`] honours.
pub const ELIST: &str = "ELIST=CMNU";

/// The WHOX token of ISUPPORT.
pub const WHOX: &str = "WHOX";

/// The IP address WHOX shows (natter does not tell users each other's addresses).
const HIDDEN_IP: &str = "255.255.255.255";

/// What a user looks like to IRC: their directory profile, or their name in every field.
fn profile(dir: &Directory, name: &str) -> Profile {
    dir.get(name)
        .unwrap_or_else(|| Profile::of_natter_user(name))
}

/// The account a user is logged in to: their nick, except for conformance-test guests.
fn account(p: &Profile) -> Option<&str> {
    (!p.guest).then_some(p.nick.as_str())
}

/// A parameter as sent, made safe to echo before a numeric's text: cut at a space
/// (there is none in a parameter but the last), `*` if it would not parse back.
fn echo(param: &str) -> &str {
    let word = param.split(' ').next().unwrap_or_default();
    if word.is_empty() || word.starts_with(':') {
        "*"
    } else {
        word
    }
}

/// `#room` for a canonical room name.
fn chan(room: &str) -> String {
    format!("#{room}")
}

/// Whether `text` matches the IRC mask `mask` (`*` any run, `?` one character), ASCII
/// case-insensitively.
pub fn matches(mask: &str, text: &str) -> bool {
    let (m, t) = (mask.as_bytes(), text.as_bytes());
    let (mut i, mut j) = (0, 0);
    // The last `*` seen and the text position it was tried from.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < m.len() && (m[i] == b'?' || m[i].eq_ignore_ascii_case(&t[j])) {
            i += 1;
            j += 1;
        } else if i < m.len() && m[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` take one more character and try again from there.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    m[i..].iter().all(|&c| c == b'*')
}

/// The fields a WHOX query asks for (`%tcuihsnfdlaor,token`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Whox {
    /// The field letters asked for.
    fields: String,
    /// The query token echoed in the `t` field.
    token: String,
}

/// The second WHO parameter: `o` (operators only) and WHOX's `%fields[,token]`.
fn who_options(param: Option<&str>) -> (bool, Option<Whox>) {
    let Some(p) = param else {
        return (false, None);
    };
    let (flags, whox) = match p.split_once('%') {
        Some((flags, rest)) => {
            let (fields, token) = rest.split_once(',').unwrap_or((rest, "0"));
            let token: String = token.chars().take(3).collect();
            let token = if token.is_empty() { "0".into() } else { token };
            let fields = fields.to_string();
            (flags, Some(Whox { fields, token }))
        }
        None => (p, None),
    };
    (flags.contains('o'), whox)
}

/// WHO: 352s (or WHOX 354s), then 315 with the mask as sent.
pub fn who(conn: &Conn, st: &State, msg: &Message, out: &mut Vec<u8>) {
    let sent = msg.param(0).filter(|m| !m.is_empty());
    let mask = match sent {
        None | Some("0") => "*",
        Some(m) => m,
    };
    let (opers_only, whox) = who_options(msg.param(1));
    let bus = &conn.shared.bus;
    let dir = &conn.shared.irc;
    // (channel field, profile) per user listed.
    let mut found: Vec<(String, Profile)> = Vec::new();
    if mask.starts_with('#') {
        if let Ok(room) = parse_room(mask)
            && let Some(members) = bus.who(&room)
        {
            let channel = chan(&room);
            for name in members.names.iter().take(MAX_REPLIES) {
                found.push((channel.clone(), profile(dir, name)));
            }
        }
    } else if !mask.contains(['*', '?', '!', '@']) {
        if validate_username(mask).is_ok()
            && let Some(name) = bus.online_name(mask)
        {
            found.push(("*".into(), profile(dir, &name)));
        }
    } else {
        // Everyone is invisible: a mask sees the asker and who shares a room with them.
        let me = st.target().to_string();
        let mut seen = vec![me.clone()];
        for room in bus.rooms_of(&me) {
            if let Some(members) = bus.who(&room) {
                seen.extend(members.names);
            }
        }
        seen.sort_by_cached_key(|n| name_key(n));
        seen.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let full = mask.contains(['!', '@']);
        for name in seen {
            if found.len() >= MAX_REPLIES {
                break;
            }
            if full {
                let p = profile(dir, &name);
                if matches(mask, &format!("{name}!{}@{USER_HOST}", p.ident)) {
                    found.push(("*".into(), p));
                }
            } else if matches(mask, &name) {
                found.push(("*".into(), profile(dir, &name)));
            }
        }
    }
    for (channel, p) in found.iter().filter(|(_, p)| p.oper || !opers_only) {
        let mut flags = String::from(if p.away.is_some() { "G" } else { "H" });
        if p.oper {
            flags.push('*');
        }
        match &whox {
            Some(w) => whox_reply(out, st, w, channel, p, &flags),
            None => numeric(
                out,
                st,
                "352",
                &[
                    channel,
                    &p.ident,
                    USER_HOST,
                    &st.server,
                    &p.nick,
                    &flags,
                    &format!("0 {}", p.realname),
                ],
            ),
        }
    }
    numeric(
        out,
        st,
        "315",
        &[echo(sent.unwrap_or("*")), "End of WHO list"],
    );
}

/// One WHOX reply: the fields asked for, in the spec's order (`tcuihsnfdlaor`).
fn whox_reply(out: &mut Vec<u8>, st: &State, w: &Whox, channel: &str, p: &Profile, flags: &str) {
    let mut params: Vec<&str> = Vec::new();
    for field in "tcuihsnfdlaor".chars().filter(|c| w.fields.contains(*c)) {
        params.push(match field {
            't' => &w.token,
            'c' => channel,
            'u' => &p.ident,
            'i' => HIDDEN_IP,
            'h' => USER_HOST,
            's' => &st.server,
            'n' => &p.nick,
            'f' => flags,
            // Hop count and idle seconds: natter is one server and does not track idling.
            'd' | 'l' => "0",
            'a' => account(p).unwrap_or("0"),
            'o' => "n/a",
            _ => &p.realname,
        });
    }
    numeric(out, st, "354", &params);
}

/// WHOIS `[server] nick[,nick]`: what is known of each, then 318.
pub fn whois(conn: &Conn, st: &State, msg: &Message, out: &mut Vec<u8>) {
    // The nick is the last parameter: `WHOIS server nick` asks a given server.
    let Some(targets) = msg.params.last().filter(|t| !t.is_empty()) else {
        numeric(out, st, "431", &["No nickname given"]);
        return;
    };
    for target in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_TARGETS)
    {
        let online = validate_username(target)
            .ok()
            .and_then(|()| conn.shared.bus.online_name(target));
        let Some(name) = online else {
            numeric(out, st, "401", &[echo(target), "No such nick"]);
            continue;
        };
        let p = profile(&conn.shared.irc, &name);
        let nick = p.nick.as_str();
        numeric(
            out,
            st,
            "311",
            &[nick, &p.ident, USER_HOST, "*", &p.realname],
        );
        numeric(out, st, "312", &[nick, &st.server, "natter chat server"]);
        if p.oper {
            numeric(out, st, "313", &[nick, "is an IRC operator"]);
        }
        if let Some(away) = &p.away {
            numeric(out, st, "301", &[nick, away]);
        }
        if let Some(account) = account(&p) {
            numeric(out, st, "330", &[nick, account, "is logged in as"]);
        }
    }
    numeric(out, st, "318", &[echo(targets), "End of /WHOIS list"]);
}

/// NAMES `#a[,#b]`: each room's members, or just 366 for one without any.
pub fn names_query(conn: &Conn, st: &State, msg: &Message, out: &mut Vec<u8>) {
    let Some(arg) = msg.param(0).filter(|a| !a.is_empty()) else {
        numeric(out, st, "366", &["*", "End of /NAMES list"]);
        return;
    };
    for channel in arg.split(',').filter(|c| !c.is_empty()).take(MAX_TARGETS) {
        let room = channel
            .starts_with('#')
            .then(|| parse_room(channel).ok())
            .flatten();
        match room.and_then(|r| conn.shared.bus.who(&r).map(|m| (r, m))) {
            Some((room, m)) => {
                let more = m.total.saturating_sub(m.names.len());
                names(out, st, &conn.shared.irc, &room, &m.names, more);
            }
            None => numeric(out, st, "366", &[echo(channel), "End of /NAMES list"]),
        }
    }
}

/// The 353 lines of a room's members (each line within 512 bytes), then 366. Also the
/// answer to a JOIN.
pub fn names(
    out: &mut Vec<u8>,
    st: &State,
    dir: &Directory,
    room: &str,
    members: &[String],
    more: usize,
) {
    let channel = chan(room);
    // ":" server " 353 " nick " = " channel " :" names "\r\n"
    let room_for_names =
        MAX_BODY.saturating_sub(st.server.len() + st.target().len() + channel.len() + 13);
    let mut batch = String::new();
    for m in members {
        let entry = if st.caps.userhost_in_names {
            format!("{m}!{}@{USER_HOST}", profile(dir, m).ident)
        } else {
            m.clone()
        };
        if !batch.is_empty() && batch.len() + 1 + entry.len() > room_for_names {
            numeric(out, st, "353", &["=", &channel, &batch]);
            batch.clear();
        }
        if !batch.is_empty() {
            batch.push(' ');
        }
        batch.push_str(&entry);
    }
    if !batch.is_empty() {
        numeric(out, st, "353", &["=", &channel, &batch]);
    }
    let end = if more > 0 {
        format!("End of /NAMES list ({more} more not listed)")
    } else {
        "End of /NAMES list".to_string()
    };
    numeric(out, st, "366", &[&channel, &end]);
}

/// LIST's filters (ELIST=MNU): room names, masks, `!`masks and user counts.
#[derive(Debug, Default)]
struct ListFilter {
    /// Rooms named exactly (canonical names).
    rooms: Vec<String>,
    /// Masks a listed room must match one of (M).
    masks: Vec<String>,
    /// Masks a listed room must match none of (N).
    not_masks: Vec<String>,
    /// More users than this (U, `>n`).
    more_than: Option<u32>,
    /// Fewer users than this (U, `<n`).
    fewer_than: Option<u32>,
    /// Created less than this many minutes ago (C, `C<n`).
    newer_than_min: Option<u64>,
    /// Created more than this many minutes ago (C, `C>n`).
    older_than_min: Option<u64>,
}

impl ListFilter {
    /// The filters in LIST's first parameter (comma-separated); unknown ones (`C<n`,
    /// `T>n`) are ignored.
    fn parse(arg: &str) -> ListFilter {
        let mut f = ListFilter::default();
        for item in arg.split(',').filter(|i| !i.is_empty()) {
            if let Some(mask) = item.strip_prefix('!') {
                f.not_masks.push(mask.to_string());
            } else if let Some(n) = item.strip_prefix('>') {
                f.more_than = n.parse().ok().or(f.more_than);
            } else if let Some(n) = item.strip_prefix('<') {
                f.fewer_than = n.parse().ok().or(f.fewer_than);
            } else if item.contains(['*', '?']) {
                f.masks.push(item.to_string());
            } else if let Some(n) = item.strip_prefix("C<") {
                f.newer_than_min = n.parse().ok().or(f.newer_than_min);
            } else if let Some(n) = item.strip_prefix("C>") {
                f.older_than_min = n.parse().ok().or(f.older_than_min);
            } else if matches!(item.as_bytes(), [b'T', b'<' | b'>', ..]) {
                // Topic times: natter rooms have no topics (T is not in ELIST).
            } else {
                // A room, or a name that cannot be one (CHANTYPES=#): then nothing is
                // listed by that name.
                let room = item.starts_with('#').then(|| parse_room(item).ok());
                f.rooms.push(room.flatten().unwrap_or_default());
            }
        }
        f
    }

    /// Whether `room`, created `age_min` minutes ago, is listed (as InspIRCd and Solanum
    /// read C: `C<n` is newer than n minutes).
    fn admits(&self, room: &RoomInfo, age_min: u64) -> bool {
        let channel = chan(&room.name);
        let named = (self.rooms.is_empty() && self.masks.is_empty())
            || self.rooms.contains(&room.name)
            || self.masks.iter().any(|m| matches(m, &channel));
        named
            && !self.not_masks.iter().any(|m| matches(m, &channel))
            && self.more_than.is_none_or(|n| room.members > n)
            && self.fewer_than.is_none_or(|n| room.members < n)
            && self.newer_than_min.is_none_or(|n| age_min < n)
            && self.older_than_min.is_none_or(|n| age_min > n)
    }
}

/// LIST `[filters]`: 321, a 322 per room (at most [`MAX_ROOMS`]), 323.
pub fn list(conn: &Conn, st: &State, msg: &Message, out: &mut Vec<u8>) {
    let filter = ListFilter::parse(msg.param(0).unwrap_or_default());
    numeric(out, st, "321", &["Channel", "Users  Name"]);
    let mut more = 0;
    let mut shown = 0;
    let created = conn.shared.bus.rooms_created();
    let now = crate::clock::now_ms();
    for room in conn.shared.bus.rooms() {
        let born = created.get(&room.name).copied().unwrap_or(now);
        let age_min = now.saturating_sub(born) / 60_000;
        if !filter.admits(&room, age_min) {
            continue;
        }
        if shown == MAX_ROOMS {
            more += 1;
            continue;
        }
        shown += 1;
        numeric(
            out,
            st,
            "322",
            &[&chan(&room.name), &room.members.to_string(), ""],
        );
    }
    let end = if more > 0 {
        format!("End of /LIST ({more} more not listed: narrow it down with a mask)")
    } else {
        "End of /LIST".to_string()
    };
    numeric(out, st, "323", &[&end]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hub::{SessionHandle, SessionId};
    use crate::irc::line;

    /// A test server with alice (the asker, an IRC user) and others online.
    struct Fixture {
        conn: Conn,
        st: State,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let (conn, dir) = crate::irc::test_conn().await;
            let mut st = State::new(20, false, "natter".into());
            st.nick = Some("alice".into());
            st.account = Some("alice".into());
            st.welcomed = true;
            let f = Fixture {
                conn,
                st,
                _dir: dir,
            };
            f.conn.shared.irc.register(
                Profile::new("alice", "al", "Alice A", false, 1),
                std::sync::Weak::new(),
            );
            f
        }

        /// Logs `user` in (a session of natter's own protocol) and joins `rooms`.
        fn online(&self, user: &str, rooms: &[&str]) -> SessionId {
            let bus = Arc::clone(&self.conn.shared.bus);
            let id = bus.connect(user, SessionHandle::queued(64));
            for room in rooms {
                bus.join_room(id, room).expect("join");
            }
            id
        }

        /// Runs one line; returns what was written.
        fn run(&self, text: &str) -> String {
            let msg = line::parse(text.as_bytes()).expect("parses");
            let mut out = Vec::new();
            let (conn, st) = (&self.conn, &self.st);
            match msg.command.as_str() {
                "WHO" => who(conn, st, &msg, &mut out),
                "WHOIS" => whois(conn, st, &msg, &mut out),
                "NAMES" => names_query(conn, st, &msg, &mut out),
                "LIST" => list(conn, st, &msg, &mut out),
                other => panic!("not a query: {other}"),
            }
            String::from_utf8(out).expect("utf8")
        }
    }

    #[test]
    fn masks_match_case_insensitively() {
        assert!(matches("coolni*", "coolNick"));
        assert!(matches("*", ""));
        assert!(matches("*an1", "#chan1"));
        assert!(matches("#c*n2", "#chan2"));
        assert!(matches("a?c*d*", "abcxdyd"));
        assert!(matches("*a*a*a", "aaaaaa"));
        assert!(!matches("*an1", "#chan2"));
        assert!(!matches("a?c", "ac"));
        assert!(!matches("", "a"));
    }

    #[tokio::test]
    async fn who_lists_a_rooms_members_and_one_nick() {
        let f = Fixture::new().await;
        f.online("alice", &["chan"]);
        f.online("Bob", &["chan"]);
        f.conn.shared.irc.register(
            Profile::new("Bob", "bobby", "Bob B", false, 1),
            std::sync::Weak::new(),
        );
        f.conn.shared.irc.update("bob", |p| {
            p.away = Some("out".into());
            p.oper = true;
        });
        assert_eq!(
            f.run("WHO #CHAN"),
            ":natter 352 alice #chan al natter natter alice H :0 Alice A\r\n\
             :natter 352 alice #chan bobby natter natter Bob G* :0 Bob B\r\n\
             :natter 315 alice #CHAN :End of WHO list\r\n"
        );
        assert_eq!(
            f.run("WHO bob"),
            ":natter 352 alice * bobby natter natter Bob G* :0 Bob B\r\n\
             :natter 315 alice bob :End of WHO list\r\n"
        );
        assert_eq!(
            f.run("WHO #chan o"),
            ":natter 352 alice #chan bobby natter natter Bob G* :0 Bob B\r\n\
             :natter 315 alice #chan :End of WHO list\r\n"
        );
        // Offline, unknown, invalid: the end alone, with the mask as sent.
        for mask in ["carol", "#nowhere", "#bad!"] {
            assert_eq!(
                f.run(&format!("WHO {mask}")),
                format!(":natter 315 alice {mask} :End of WHO list\r\n")
            );
        }
        // What cannot be echoed as a middle parameter is cut at the space.
        assert_eq!(
            f.run("WHO :x y"),
            ":natter 315 alice x :End of WHO list\r\n"
        );
    }

    #[tokio::test]
    async fn who_masks_see_only_users_sharing_a_room() {
        let f = Fixture::new().await;
        f.online("alice", &["a"]);
        f.online("bob", &["a", "b"]);
        f.online("bonnie", &["b"]);
        // A natter user without an IRC profile: the name in every field.
        assert_eq!(
            f.run("WHO bo*"),
            ":natter 352 alice * bob natter natter bob H :0 bob\r\n\
             :natter 315 alice bo* :End of WHO list\r\n"
        );
        assert_eq!(
            f.run("WHO *"),
            ":natter 352 alice * al natter natter alice H :0 Alice A\r\n\
             :natter 352 alice * bob natter natter bob H :0 bob\r\n\
             :natter 315 alice * :End of WHO list\r\n"
        );
        assert!(f.run("WHO *!al@*").contains(" alice H :0 Alice A\r\n"));
        // A plain nick is not a search: invisible users are found by name.
        assert!(f.run("WHO bonnie").contains(" 352 alice * bonnie "));
        assert_eq!(
            f.run("WHO zz*"),
            ":natter 315 alice zz* :End of WHO list\r\n"
        );
    }

    #[tokio::test]
    async fn whox_fields_come_in_the_specs_order() {
        let f = Fixture::new().await;
        f.online("alice", &["chan"]);
        let all = f.run("WHO alice %tcuihsnfdlaor,123");
        assert_eq!(
            all,
            ":natter 354 alice 123 * al 255.255.255.255 natter natter alice H 0 0 alice n/a :Alice A\r\n\
             :natter 315 alice alice :End of WHO list\r\n"
        );
        assert_eq!(
            f.run(&format!(
                "WHO alice %{},123",
                "tcuihsnfdlaor".chars().rev().collect::<String>()
            )),
            all
        );
        assert!(
            f.run("WHO alice %tn,321")
                .starts_with(":natter 354 alice 321 :alice\r\n")
        );
        // Conformance-test guests are not logged in to an account.
        f.conn.shared.irc.update("alice", |p| p.guest = true);
        assert!(
            f.run("WHO #chan %na")
                .starts_with(":natter 354 alice alice :0\r\n")
        );
    }

    #[tokio::test]
    async fn whois_tells_what_is_known() {
        let f = Fixture::new().await;
        f.online("Bob", &[]);
        f.conn.shared.irc.register(
            Profile::new("Bob", "bobby", "Bob B", false, 1),
            std::sync::Weak::new(),
        );
        f.conn.shared.irc.update("bob", |p| {
            p.away = Some("lunch".into());
            p.oper = true;
        });
        assert_eq!(
            f.run("WHOIS natter BOB"),
            ":natter 311 alice Bob bobby natter * :Bob B\r\n\
             :natter 312 alice Bob natter :natter chat server\r\n\
             :natter 313 alice Bob :is an IRC operator\r\n\
             :natter 301 alice Bob :lunch\r\n\
             :natter 330 alice Bob Bob :is logged in as\r\n\
             :natter 318 alice BOB :End of /WHOIS list\r\n"
        );
        assert_eq!(
            f.run("WHOIS carol"),
            ":natter 401 alice carol :No such nick\r\n:natter 318 alice carol :End of /WHOIS list\r\n"
        );
        assert_eq!(f.run("WHOIS"), ":natter 431 alice :No nickname given\r\n");
        f.conn.shared.irc.update("bob", |p| p.guest = true);
        assert!(!f.run("WHOIS bob").contains(" 330 "));
    }

    #[tokio::test]
    async fn names_lists_members_or_just_ends() {
        let mut f = Fixture::new().await;
        f.online("alice", &["chan"]);
        f.online("Bob", &["chan"]);
        assert_eq!(
            f.run("NAMES #Chan,#none,invalid"),
            ":natter 353 alice = #chan :alice Bob\r\n\
             :natter 366 alice #chan :End of /NAMES list\r\n\
             :natter 366 alice #none :End of /NAMES list\r\n\
             :natter 366 alice invalid :End of /NAMES list\r\n"
        );
        assert_eq!(
            f.run("NAMES"),
            ":natter 366 alice * :End of /NAMES list\r\n"
        );
        f.st.caps.userhost_in_names = true;
        assert!(
            f.run("NAMES #chan")
                .starts_with(":natter 353 alice = #chan :alice!al@natter Bob!Bob@natter\r\n")
        );
    }

    #[tokio::test]
    async fn names_lines_stay_within_the_line_limit() {
        let f = Fixture::new().await;
        let members: Vec<String> = (0..300)
            .map(|i| format!("user{i:03}_{}", "x".repeat(20)))
            .collect();
        let mut out = Vec::new();
        names(&mut out, &f.st, &f.conn.shared.irc, "big", &members, 7);
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.split_inclusive("\r\n").collect();
        assert!(lines.len() > 10);
        assert!(lines.iter().all(|l| l.len() <= MAX_BODY), "{lines:?}");
        let listed: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains(" 353 "))
            .flat_map(|l| l.trim_end().rsplit_once(" :").expect("names").1.split(' '))
            .collect();
        assert_eq!(listed, members);
        assert!(lines.last().expect("366").contains("(7 more not listed)"));
    }

    #[tokio::test]
    async fn list_filters_by_name_mask_and_users() {
        let f = Fixture::new().await;
        f.online("alice", &["chan1", "chan2"]);
        f.online("bob", &["chan2"]);
        let rooms = |line: &str| -> Vec<String> {
            let out = f.run(line);
            assert!(
                out.starts_with(":natter 321 alice Channel :Users  Name\r\n"),
                "{out}"
            );
            assert!(
                out.ends_with(":natter 323 alice :End of /LIST\r\n"),
                "{out}"
            );
            out.lines()
                .filter(|l| l.contains(" 322 "))
                .map(|l| l.split(' ').nth(3).expect("channel").to_string())
                .collect()
        };
        assert_eq!(rooms("LIST"), ["#chan1", "#chan2"]);
        assert!(f.run("LIST").contains(" 322 alice #chan2 2 :\r\n"));
        assert_eq!(rooms("LIST *an1"), ["#chan1"]);
        assert_eq!(rooms("LIST #C*n2"), ["#chan2"]);
        assert_eq!(rooms("LIST !#ch*"), Vec::<String>::new());
        assert_eq!(rooms("LIST !*an1"), ["#chan2"]);
        assert_eq!(rooms("LIST >1"), ["#chan2"]);
        assert_eq!(rooms("LIST <2"), ["#chan1"]);
        assert_eq!(rooms("LIST <1"), Vec::<String>::new());
        assert_eq!(rooms("LIST #CHAN1,#chan2"), ["#chan1", "#chan2"]);
        assert_eq!(rooms("LIST #nonexistent"), Vec::<String>::new());
        assert_eq!(rooms("LIST chan1"), Vec::<String>::new());
        assert_eq!(rooms("LIST #chan*,>1"), ["#chan2"]);
        // Unsupported filters (creation and topic time) are ignored.
        assert_eq!(rooms("LIST C<10"), ["#chan1", "#chan2"]);
    }
}
