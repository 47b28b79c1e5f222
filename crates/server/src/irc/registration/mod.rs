//! Before the welcome: CAP negotiation, NICK, USER, and logging in with PASS
//! `account:password` or SASL PLAIN. natter has no anonymous users, so registration ends
//! (001–005) only once the session has accepted the login and the nick is the account
//! name.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use natter_proto::{ClientFrame, ErrorCode, MAX_ID_LEN, MAX_USERNAME_LEN, validate_username};

use super::directory::Profile;
use super::line::{self, LineError, Message};
use super::{Conn, Out, USER_HOST, account, commands, label};
use crate::session::InputError;

/// Capabilities offered in CAP LS.
pub const CAPS: &[&str] = &[
    "account-tag",
    "away-notify",
    "batch",
    "cap-notify",
    "draft/account-registration",
    "draft/chathistory",
    "echo-message",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "sasl",
    "server-time",
    "userhost-in-names",
];

/// Lines a client may send before it logs in; the session's own pre-login budget only
/// sees the frames the adapter yields, not CAP or NICK.
const MAX_REGISTRATION_LINES: u32 = 64;

/// Longest SASL payload accepted (PLAIN needs two names and a password).
const MAX_SASL: usize = 1200;

/// How the login under way was asked for, which decides the numerics of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// AUTHENTICATE PLAIN: 900/903 or 904.
    Sasl,
    /// PASS: the welcome, or 464.
    Pass,
    /// A conformance-test guest (NICK and USER alone): the welcome, or 433 when the
    /// nick is an account already.
    Guest,
    /// `REGISTER` (draft/account-registration): `REGISTER SUCCESS` and 900, or `FAIL`.
    Register,
    /// The NickServ service: its notices and 900.
    NickServ {
        /// `REGISTER` rather than `IDENTIFY`.
        register: bool,
    },
}

/// Negotiated capabilities.
#[derive(Debug, Default, Clone, Copy)]
pub struct Caps {
    /// `cap-notify` (natter never changes its capabilities while a client is connected,
    /// so there is nothing to notify; accepted because clients ask for it).
    pub cap_notify: bool,
    /// `account-tag`.
    pub account_tag: bool,
    /// `away-notify`.
    pub away_notify: bool,
    /// `batch`.
    pub batch: bool,
    /// `draft/account-registration` (REGISTER works without it too).
    pub account_registration: bool,
    /// `draft/chathistory`: CHATHISTORY, and no history replayed after a JOIN.
    pub chathistory: bool,
    /// `echo-message`.
    pub echo_message: bool,
    /// `labeled-response`.
    pub labeled_response: bool,
    /// `message-tags`.
    pub message_tags: bool,
    /// `multi-prefix` (accepted; natter rooms have no channel modes to prefix).
    pub multi_prefix: bool,
    /// `sasl`.
    pub sasl: bool,
    /// `server-time`.
    pub server_time: bool,
    /// `userhost-in-names`.
    pub userhost_in_names: bool,
}

/// Registration state of one connection.
#[derive(Debug)]
pub struct State {
    /// The nick the client asked for (the account's name once welcomed).
    pub nick: Option<String>,
    /// USER was sent.
    user: bool,
    /// The user name from USER (shown in WHO and WHOIS).
    pub ident: String,
    /// The real name from USER.
    pub realname: String,
    /// Between CAP LS/REQ and CAP END.
    cap_negotiating: bool,
    /// Negotiated capabilities.
    pub caps: Caps,
    /// An AUTHENTICATE PLAIN exchange under way, with the payload so far.
    sasl: Option<String>,
    /// A login the session is checking.
    pub(super) pending: Option<Via>,
    /// PASS given: the account (if named) and the password.
    pass: Option<(Option<String>, String)>,
    /// The account, once the session accepted the login.
    pub account: Option<String>,
    /// 001 was sent.
    pub welcomed: bool,
    /// Lines before the welcome.
    lines: u32,
    /// Rooms a session may join (CHANLIMIT).
    max_rooms: usize,
    /// Conformance-test guests are let in (`irc_conformance_guests`).
    guests: bool,
    /// Parting words of PARTs not yet answered, by room as sent: the session's answer
    /// (`parted`) does not repeat them, and IRC shows them to the leaver too.
    pub parting: Vec<(String, String)>,
    /// The gateway's connection password (`irc_password`) was given.
    pub server_password_ok: bool,
    /// The labelled command whose replies are being collected (`labeled-response`).
    pub label: Option<label::Open>,
    /// Batches started on this connection (their ids).
    pub batches: u64,
    /// Logged in as a conformance-test guest.
    pub guest: bool,
    /// The server's name in prefixes and numerics (`irc_server_name`).
    pub server: Arc<str>,
}

impl State {
    /// A fresh connection's state.
    pub fn new(max_rooms: usize, guests: bool, server: Arc<str>) -> State {
        State {
            nick: None,
            user: false,
            ident: String::new(),
            realname: String::new(),
            cap_negotiating: false,
            caps: Caps::default(),
            sasl: None,
            pending: None,
            pass: None,
            account: None,
            welcomed: false,
            lines: 0,
            max_rooms,
            guests,
            parting: Vec::new(),
            label: None,
            batches: 0,
            server_password_ok: false,
            guest: false,
            server,
        }
    }

    /// The nick for numerics: `*` until one is known.
    pub fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// The login under way, taken (its answer has arrived).
    pub fn take_pending(&mut self) -> Option<Via> {
        self.pending.take()
    }
}

/// Appends a numeric reply to `out`.
pub fn numeric(out: &mut Vec<u8>, st: &State, code: &str, params: &[&str]) {
    let mut all = Vec::with_capacity(params.len() + 1);
    all.push(st.target());
    all.extend_from_slice(params);
    line::write(out, None, &st.server, code, &all);
}

/// The notice for clients that try to chat without logging in.
pub const LOGIN_NOTICE: &str = "natter has no anonymous users: your nick is your \
     account name. Log in with /msg NickServ IDENTIFY <password> (or SASL PLAIN, or PASS \
     account:password when connecting); create the account with /msg NickServ REGISTER \
     <password>.";

impl Conn {
    /// Handles one line from the client; returns the frames it stands for.
    pub(super) fn on_line(self: &Arc<Self>, raw: &[u8]) -> Vec<Result<ClientFrame, InputError>> {
        let msg = match line::parse(raw) {
            Ok(m) => m,
            Err(LineError::Empty) => return Vec::new(),
            Err(e) => {
                let mut out = Vec::new();
                let st = self.lock();
                match e {
                    LineError::TooLong => {
                        numeric(&mut out, &st, "417", &["Input line was too long"])
                    }
                    _ => line::write(
                        &mut out,
                        None,
                        &st.server,
                        "FAIL",
                        &["*", "INVALID_UTF8", "natter accepts UTF-8 only"],
                    ),
                }
                drop(st);
                self.emit(out);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut frames = Vec::new();
        {
            let mut st = self.lock();
            if st.account.is_none() {
                st.lines += 1;
                if st.lines > MAX_REGISTRATION_LINES {
                    line::write(
                        &mut out,
                        None,
                        "",
                        "ERROR",
                        &["Closing link: too many lines before logging in"],
                    );
                    drop(st);
                    self.emit(out);
                    return vec![Err(InputError::Io(
                        "too many lines before logging in".into(),
                    ))];
                }
            }
            if st.welcomed && st.caps.labeled_response && st.caps.batch {
                st.label = label::of(msg.tags.as_deref());
            }
            match msg.command.as_str() {
                "CAP" => self.cap(&mut st, &msg, &mut out, &mut frames),
                "NICK" => self.nick(&mut st, &msg, &mut out, &mut frames),
                "USER" => {
                    if st.user || st.welcomed {
                        numeric(&mut out, &st, "462", &["You may not reregister"]);
                    } else if msg.params.len() < 4
                        || msg.params[0].is_empty()
                        || msg.params[3].is_empty()
                    {
                        numeric(&mut out, &st, "461", &["USER", "Not enough parameters"]);
                    } else {
                        st.user = true;
                        // A user name is shown in masks: kept to what a nick may hold.
                        st.ident = msg.params[0]
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                            .take(MAX_USERNAME_LEN)
                            .collect();
                        st.realname = msg.params[3].chars().take(200).collect();
                        self.try_complete(&mut st, &mut out, &mut frames);
                    }
                }
                "PASS" => match msg.param(0) {
                    _ if st.welcomed || st.account.is_some() => {
                        numeric(&mut out, &st, "462", &["You may not reregister"]);
                    }
                    None => numeric(&mut out, &st, "461", &["PASS", "Not enough parameters"]),
                    Some(p) if self.shared.config.irc_password.is_some() => {
                        let expected = self
                            .shared
                            .config
                            .irc_password
                            .as_ref()
                            .map(|s| s.0.as_bytes());
                        // Judged when registration completes (464 and ERROR then), so
                        // that a client sending PASS, NICK and USER at once reads why.
                        st.server_password_ok =
                            expected.is_some_and(|e| crate::web::operator::ct_eq(e, p.as_bytes()));
                        self.try_complete(&mut st, &mut out, &mut frames);
                    }
                    Some(p) => {
                        st.pass = Some(match p.split_once(':') {
                            Some((account, password)) if !account.is_empty() => {
                                (Some(account.to_string()), password.to_string())
                            }
                            _ => (None, p.to_string()),
                        });
                        self.try_complete(&mut st, &mut out, &mut frames);
                    }
                },
                "AUTHENTICATE" => self.authenticate(&mut st, &msg, &mut out, &mut frames),
                "REGISTER" => self.register(&mut st, &msg, &mut out, &mut frames),
                "NICKSERV" | "NS" => {
                    let text = msg.params.join(" ");
                    self.nickserv(&mut st, &text, &mut out, &mut frames);
                }
                "PRIVMSG" if msg.param(0).is_some_and(account::is_nickserv) => {
                    let text = msg.param(1).unwrap_or_default().to_string();
                    self.nickserv(&mut st, &text, &mut out, &mut frames);
                }
                "PING" => match msg.param(0) {
                    // After the welcome the session answers, in order: a client that
                    // pings to know its earlier lines took effect gets the PONG after
                    // their results (as irctest and bouncers do).
                    Some(token)
                        if st.welcomed && !token.is_empty() && token.len() <= MAX_ID_LEN =>
                    {
                        frames.push(ClientFrame::Ping {
                            id: Some(natter_proto::FrameId::Str(token.to_string())),
                        });
                    }
                    Some(token) => {
                        line::write(&mut out, None, &st.server, "PONG", &[&st.server, token])
                    }
                    None => numeric(&mut out, &st, "409", &["No origin specified"]),
                },
                "PONG" => {
                    if st.account.is_some() {
                        frames.push(ClientFrame::Pong { id: None });
                    }
                }
                "QUIT" => frames.push(ClientFrame::Quit {
                    id: None,
                    message: msg.param(0).map(str::to_string),
                }),
                _ if st.welcomed => commands::command(self, &mut st, &msg, &mut out, &mut frames),
                _ => {
                    numeric(&mut out, &st, "451", &["You have not registered"]);
                    line::write(
                        &mut out,
                        None,
                        &st.server,
                        "NOTICE",
                        &[st.target(), LOGIN_NOTICE],
                    );
                }
            }
            if let Some(open) = st.label.as_mut() {
                open.push(&out);
                out.clear();
                let waits = self
                    .blocking
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
                if frames.is_empty() || waits {
                    // Nothing for the session to answer: the replies are all here.
                    if let Some(open) = st.label.take() {
                        st.batches += 1;
                        label::close(open, &st.server, st.batches, &mut out);
                    }
                } else {
                    frames.push(label::end_frame());
                }
            }
        }
        self.emit(out);
        frames.into_iter().map(Ok).collect()
    }

    /// CAP LS / LIST / REQ / END.
    fn cap(&self, st: &mut State, msg: &Message, out: &mut Vec<u8>, frames: &mut Vec<ClientFrame>) {
        let sub = msg.param(0).unwrap_or_default().to_ascii_uppercase();
        let target = st.target().to_string();
        let reply = |out: &mut Vec<u8>, sub: &str, text: &str| {
            line::write(out, None, &st.server, "CAP", &[&target, sub, text]);
        };
        match sub.as_str() {
            "LS" => {
                if !st.welcomed {
                    st.cap_negotiating = true;
                }
                let v302 = msg
                    .param(1)
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|v| v >= 302);
                let list: Vec<&str> = CAPS
                    .iter()
                    .map(|c| match *c {
                        "sasl" if v302 => "sasl=PLAIN",
                        "draft/account-registration" if v302 => {
                            "draft/account-registration=before-connect"
                        }
                        c => c,
                    })
                    .collect();
                reply(out, "LS", &list.join(" "));
            }
            "LIST" => {
                let c = st.caps;
                let on: Vec<&str> = [
                    (c.account_tag, "account-tag"),
                    (c.away_notify, "away-notify"),
                    (c.batch, "batch"),
                    (c.account_registration, "draft/account-registration"),
                    (c.cap_notify, "cap-notify"),
                    (c.chathistory, "draft/chathistory"),
                    (c.echo_message, "echo-message"),
                    (c.labeled_response, "labeled-response"),
                    (c.message_tags, "message-tags"),
                    (c.multi_prefix, "multi-prefix"),
                    (c.sasl, "sasl"),
                    (c.server_time, "server-time"),
                    (c.userhost_in_names, "userhost-in-names"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                reply(out, "LIST", &on.join(" "));
            }
            "REQ" => {
                if !st.welcomed {
                    st.cap_negotiating = true;
                }
                let asked = msg.param(1).unwrap_or_default();
                let mut caps = st.caps;
                let known = asked.split(' ').filter(|c| !c.is_empty()).all(|c| {
                    let (name, on) = match c.strip_prefix('-') {
                        Some(n) => (n, false),
                        None => (c, true),
                    };
                    let slot = match name {
                        "account-tag" => &mut caps.account_tag,
                        "away-notify" => &mut caps.away_notify,
                        "batch" => &mut caps.batch,
                        "draft/account-registration" => &mut caps.account_registration,
                        "cap-notify" => &mut caps.cap_notify,
                        "draft/chathistory" => &mut caps.chathistory,
                        "echo-message" => &mut caps.echo_message,
                        "labeled-response" => &mut caps.labeled_response,
                        "message-tags" => &mut caps.message_tags,
                        "multi-prefix" => &mut caps.multi_prefix,
                        "sasl" => &mut caps.sasl,
                        "server-time" => &mut caps.server_time,
                        "userhost-in-names" => &mut caps.userhost_in_names,
                        _ => return false,
                    };
                    *slot = on;
                    true
                });
                if known {
                    st.caps = caps;
                    self.slot
                        .store(super::encode::slot_of(&caps), Ordering::Relaxed);
                    self.echo.store(caps.echo_message, Ordering::Relaxed);
                    self.away_notify.store(caps.away_notify, Ordering::Relaxed);
                    reply(out, "ACK", asked);
                } else {
                    reply(out, "NAK", asked);
                }
            }
            "END" => {
                if !st.welcomed {
                    st.cap_negotiating = false;
                    self.try_complete(st, out, frames);
                }
            }
            _ => numeric(out, st, "410", &[&sub, "Invalid CAP command"]),
        }
    }

    /// NICK: before the welcome, remembered; after it, only the account's own name.
    fn nick(
        &self,
        st: &mut State,
        msg: &Message,
        out: &mut Vec<u8>,
        frames: &mut Vec<ClientFrame>,
    ) {
        let Some(nick) = msg.param(0).filter(|n| !n.is_empty()) else {
            numeric(out, st, "431", &["No nickname given"]);
            return;
        };
        if validate_username(nick).is_err() {
            let why = format!(
                "Erroneous nickname: natter names are 1-{MAX_USERNAME_LEN} letters, digits, '_' or '-'"
            );
            numeric(out, st, "432", &[nick, &why]);
            return;
        }
        if st.welcomed {
            if !st
                .nick
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(nick))
            {
                numeric(
                    out,
                    st,
                    "432",
                    &[
                        nick,
                        "Your nick is your natter account name and cannot change",
                    ],
                );
            }
            return;
        }
        st.nick = Some(nick.to_string());
        self.try_complete(st, out, frames);
    }

    /// AUTHENTICATE: PLAIN only, payload in 400-byte base64 chunks.
    fn authenticate(
        &self,
        st: &mut State,
        msg: &Message,
        out: &mut Vec<u8>,
        frames: &mut Vec<ClientFrame>,
    ) {
        let arg = msg.param(0).unwrap_or_default();
        if st.welcomed || st.account.is_some() {
            numeric(
                out,
                st,
                "907",
                &["You have already authenticated using SASL"],
            );
            return;
        }
        if arg == "*" {
            st.sasl = None;
            numeric(out, st, "906", &["SASL authentication aborted"]);
            return;
        }
        let Some(buf) = st.sasl.as_mut() else {
            if arg.eq_ignore_ascii_case("PLAIN") && st.pending.is_none() {
                st.sasl = Some(String::new());
                line::write(out, None, &st.server, "AUTHENTICATE", &["+"]);
            } else {
                numeric(out, st, "908", &["PLAIN", "are available SASL mechanisms"]);
                numeric(out, st, "904", &["SASL authentication failed"]);
            }
            return;
        };
        if arg != "+" {
            buf.push_str(arg);
        }
        if buf.len() > MAX_SASL {
            st.sasl = None;
            numeric(out, st, "905", &["SASL message too long"]);
            return;
        }
        // A chunk of exactly 400 bytes means more follow.
        if arg.len() == 400 {
            return;
        }
        let payload = st.sasl.take().unwrap_or_default();
        let creds = line::base64_decode(&payload).and_then(|raw| {
            let text = String::from_utf8(raw).ok()?;
            let mut parts = text.split('\0');
            let (_authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
            (parts.next().is_none() && !authcid.is_empty())
                .then(|| (authcid.to_string(), password.to_string()))
        });
        match creds {
            Some((account, password)) => {
                st.pending = Some(Via::Sasl);
                frames.push(ClientFrame::Auth {
                    id: None,
                    user: account,
                    password,
                    register: false,
                });
            }
            None => numeric(
                out,
                st,
                "904",
                &["SASL authentication failed: malformed PLAIN payload"],
            ),
        }
    }

    /// Ends registration if everything is there: the welcome once logged in, the login
    /// from PASS once NICK and USER are known, or the explanation that a login is needed.
    pub(super) fn try_complete(
        &self,
        st: &mut State,
        out: &mut Vec<u8>,
        frames: &mut Vec<ClientFrame>,
    ) {
        if st.welcomed || st.cap_negotiating || !st.user || st.pending.is_some() {
            return;
        }
        let Some(nick) = st.nick.clone() else { return };
        if self.shared.config.irc_password.is_some() && !st.server_password_ok {
            numeric(
                out,
                st,
                "464",
                &["Password incorrect or missing: this gateway needs PASS with its password"],
            );
            frames.push(ClientFrame::Quit {
                id: None,
                message: None,
            });
            return;
        }
        if let Some(account) = st.account.clone() {
            if !nick.eq_ignore_ascii_case(&account) {
                let why = format!(
                    "Your nick must be your account name: you are logged in as {account}; use /nick {account}"
                );
                numeric(out, st, "432", &[&nick, &why]);
                return;
            }
            st.nick = Some(account);
            self.welcome(st, out);
            return;
        }
        if let Some((account, password)) = st.pass.take() {
            let account = account.unwrap_or_else(|| nick.clone());
            if !nick.eq_ignore_ascii_case(&account) {
                let why = format!("Your nick must be your account name ({account})");
                numeric(out, st, "432", &[&nick, &why]);
                st.pass = Some((Some(account), password));
                return;
            }
            st.pending = Some(Via::Pass);
            frames.push(ClientFrame::Auth {
                id: None,
                user: account,
                password,
                register: false,
            });
            return;
        }
        if st.guests {
            // A password of 32 random letters and digits: the account is the nick's
            // for this server's conformance run, and nobody can log in to it again.
            let password: String = (0..32)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)])
                })
                .collect();
            st.pending = Some(Via::Guest);
            frames.push(ClientFrame::Auth {
                id: None,
                user: nick,
                password,
                register: true,
            });
            return;
        }
        // Welcomed without an account: the client can log in or register with the
        // service (clients without SASL send nothing before the welcome), and until then
        // everything else is refused with 451 and this notice.
        self.welcome(st, out);
        account::notice(out, st, LOGIN_NOTICE);
    }

    /// The session accepted the login of `user` (called by the encoder for `auth_ok`).
    pub(super) fn on_auth_ok(&self, user: &str) {
        let mut out = Vec::new();
        let mut st = self.lock();
        st.account = Some(user.to_string());
        // A session logs in once; a second auth_ok cannot happen.
        let _ = self.account.set(user.to_string());
        let via = st.take_pending();
        st.guest = via == Some(Via::Guest);
        if let Some(v @ (Via::Register | Via::NickServ { .. })) = via {
            account::succeeded(&mut out, &st, v, user);
        }
        if via == Some(Via::Sasl) {
            let mask = format!("{}!{}@{USER_HOST}", st.target(), st.target());
            let text = format!("You are now logged in as {user}");
            numeric(&mut out, &st, "900", &[&mask, user, &text]);
            numeric(&mut out, &st, "903", &["SASL authentication successful"]);
        }
        let mut none = Vec::new();
        if st.welcomed {
            // Logged in after a welcome without an account (NickServ, REGISTER).
            self.publish_profile(&st);
        }
        self.try_complete(&mut st, &mut out, &mut none);
        drop(st);
        // Empty if the welcome went out: it took these lines with it.
        self.emit(out);
    }

    /// Records the user name and real name of a connection that is welcomed and logged
    /// in, for WHO and WHOIS. Not before the login: a connection that only claims a nick
    /// must not change what others see of that user.
    fn publish_profile(&self, st: &State) {
        let (Some(nick), true) = (st.account.as_deref(), st.welcomed) else {
            return;
        };
        let ident = if st.ident.is_empty() { nick } else { &st.ident };
        self.shared.irc.register(
            Profile::new(nick, ident, &st.realname, st.guest, crate::now_ms()),
            self.me.clone(),
        );
    }

    /// Sends 001–005 and the MOTD's absence, then lets the session's outbox through.
    fn welcome(&self, st: &mut State, out: &mut Vec<u8>) {
        let nick = st.target().to_string();
        let version = env!("CARGO_PKG_VERSION");
        numeric(out, st, "001", &[&format!("Welcome to natter, {nick}")]);
        numeric(
            out,
            st,
            "002",
            &[&format!(
                "Your host is {}, running natter {version}",
                st.server
            )],
        );
        numeric(out, st, "003", &["This server is a natter chat server"]);
        let server = st.server.clone();
        numeric(out, st, "004", &[&server, version, "i", "nt"]);
        let chanlimit = format!("CHANLIMIT=#:{}", st.max_rooms);
        let nicklen = format!("NICKLEN={MAX_USERNAME_LEN}");
        let chanlen = format!("CHANNELLEN={}", MAX_USERNAME_LEN + 1);
        let linelen = format!("LINELEN={}", line::MAX_BODY);
        numeric(
            out,
            st,
            "005",
            &[
                "CASEMAPPING=ascii",
                &chanlimit,
                &chanlen,
                "CHANTYPES=#",
                super::query::ELIST,
                &linelen,
                "NETWORK=natter",
                &nicklen,
                "TARGMAX=JOIN:,PART:,PRIVMSG:4,NOTICE:4,NAMES:1,WHO:1",
                "UTF8ONLY",
                super::query::WHOX,
                "are supported by this server",
            ],
        );
        super::history::isupport(out, st);
        numeric(out, st, "422", &["MOTD File is missing"]);
        st.welcomed = true;
        self.publish_profile(st);
        self.welcomed.store(true, Ordering::Release);
        self.direct.send(Out::Open(std::mem::take(out).into()));
    }
}

/// The numeric for a refused login: SASL's 904, or 464 (465 when banned) for PASS.
pub fn login_refused(
    out: &mut Vec<u8>,
    st: &State,
    via: Option<Via>,
    code: ErrorCode,
    message: &str,
) {
    match (via, code) {
        (_, ErrorCode::Banned) => numeric(out, st, "465", &[message]),
        (Some(Via::Guest), ErrorCode::UsernameTaken) => {
            numeric(out, st, "433", &[st.target(), "Nickname is already in use"])
        }
        (Some(Via::Guest), _) => numeric(out, st, "432", &[st.target(), message]),
        (Some(v @ (Via::Register | Via::NickServ { .. })), _) => {
            account::refused(out, st, v, code, message)
        }
        (Some(Via::Sasl), _) => numeric(
            out,
            st,
            "904",
            &[&format!("SASL authentication failed: {message}")],
        ),
        _ => numeric(out, st, "464", &[&format!("Password incorrect: {message}")]),
    }
}

#[cfg(test)]
mod tests;
