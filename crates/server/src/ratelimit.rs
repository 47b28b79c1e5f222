//! Rate limits: a token bucket per account with escalating mutes for floods, used for
//! chat messages and (with its own settings) for joining and leaving rooms, and operator
//! mutes. Failed logins are throttled in [`crate::throttle`].
//!
//! Every check takes the current [`Instant`] as an argument, so the rules are tested
//! with a synthetic clock and the server passes `Instant::now()`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use natter_proto::name_key;
use tokio::time::Instant;

/// Message rate settings.
#[derive(Debug, Clone)]
pub struct MessageLimits {
    /// Sustained messages per second per account.
    pub rate: f64,
    /// Messages that may be sent at once after a quiet period.
    pub burst: f64,
    /// Rejected messages in a row that trigger a mute.
    pub strikes_to_mute: u32,
    /// First mute; each further mute doubles it.
    pub mute_base: Duration,
    /// Mutes after which the next escalation disconnects instead.
    pub max_mutes: u32,
}

/// A classic token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens available now (fractional while refilling).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        self.try_take_n(1.0, rate, burst, now)
    }

    /// Takes `n` tokens (at most `burst`), or says how long until they are available.
    pub fn try_take_n(
        &mut self,
        n: f64,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        let n = n.clamp(1.0, burst.max(1.0));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / rate))
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Allow,
    /// Reject it: too fast; sending works again after the duration.
    Limited(Duration),
    /// Reject it: the account is muted for the duration (just now, or still).
    Muted(Duration),
    /// Reject it and disconnect: the account kept flooding through its mutes.
    Disconnect,
    /// Reject it: an operator muted the account; it lifts after the duration.
    MutedByOperator(Duration),
}

/// Flood state of one account.
#[derive(Debug)]
struct Flood {
    /// Message budget.
    bucket: TokenBucket,
    /// Rejected messages since the last accepted one or the last mute.
    strikes: u32,
    /// Mutes so far (reset after a long quiet period).
    mutes: u32,
    /// End of the current mute, if any.
    muted_until: Option<Instant>,
    /// End of the current operator mute, if any; separate from `muted_until` so it
    /// neither escalates nor is cut short by the flood rules.
    operator_until: Option<Instant>,
}

impl Flood {
    /// Fresh state: a full bucket, no strikes, no mutes.
    fn new(burst: f64, now: Instant) -> Flood {
        Flood {
            bucket: TokenBucket::new(burst, now),
            strikes: 0,
            mutes: 0,
            muted_until: None,
            operator_until: None,
        }
    }

    /// Whether an operator or flood mute is running at `now`.
    fn is_muted(&self, now: Instant) -> bool {
        self.operator_until.is_some_and(|u| u > now) || self.muted_until.is_some_and(|u| u > now)
    }

    /// Whether this state still matters at `now`, so pruning must keep it; an expired
    /// mute does not.
    fn is_live(&self, now: Instant) -> bool {
        self.is_muted(now) || self.strikes > 0
    }
}

/// Longest operator mute; longer requests are clamped so the end time cannot overflow.
const MAX_OPERATOR_MUTE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Per-account message limiter shared by all of an account's sessions.
pub struct MessageLimiter {
    /// Settings.
    limits: MessageLimits,
    /// Flood state by case-folded account name.
    accounts: Mutex<HashMap<String, Flood>>,
}

/// Accounts tracked before idle ones are forgotten.
const MAX_FLOOD_ENTRIES: usize = 100_000;

impl MessageLimiter {
    /// A limiter with these settings.
    pub fn new(limits: MessageLimits) -> MessageLimiter {
        MessageLimiter {
            limits,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `account` (any case), created if new; prunes idle accounts first so
    /// the map stays bounded.
    fn with_flood<T>(&self, account: &str, now: Instant, f: impl FnOnce(&mut Flood) -> T) -> T {
        let mut map = lock(&self.accounts);
        if map.len() > MAX_FLOOD_ENTRIES {
            // Bound memory: forget accounts that are neither muted nor striking.
            map.retain(|_, f| f.is_live(now));
        }
        let flood = map
            .entry(name_key(account))
            .or_insert_with(|| Flood::new(self.limits.burst, now));
        f(flood)
    }

    /// Decides about one message from `account` at `now`.
    pub fn check(&self, account: &str, now: Instant) -> Verdict {
        self.check_shared(account, 1, now)
    }

    /// Decides about one message from `account` at `now` when the account is sending
    /// through `nodes` cluster nodes, each limiting it alone: each message costs
    /// `nodes` tokens, so that together they let the account send at about the
    /// configured rate, not `nodes` times it.
    pub fn check_shared(&self, account: &str, nodes: usize, now: Instant) -> Verdict {
        let l = &self.limits;
        let cost = nodes.max(1) as f64;
        self.with_flood(account, now, |f| decide(f, l, cost, now))
    }

    /// Mutes `account` by operator decision for `duration` from `now`, replacing any
    /// earlier operator mute.
    pub fn mute(&self, account: &str, duration: Duration, now: Instant) {
        let until = now + duration.min(MAX_OPERATOR_MUTE);
        self.with_flood(account, now, |f| f.operator_until = Some(until));
    }

    /// Lifts the operator mute and any flood mute of `account`; returns whether one was
    /// still running.
    pub fn unmute(&self, account: &str) -> bool {
        // No `now` parameter in this API: the real clock only decides the answer, not
        // what is cleared, so synthetic-clock callers still get the mute lifted.
        let now = Instant::now();
        let mut map = lock(&self.accounts);
        let Some(f) = map.get_mut(&name_key(account)) else {
            return false;
        };
        let running = f.is_muted(now);
        f.operator_until = None;
        f.muted_until = None;
        // A lifted mute is forgiven: the next message starts a fresh count.
        f.strikes = 0;
        running
    }

    /// How much longer `account` is muted (by an operator or for flooding), if at all.
    pub fn muted_until(&self, account: &str, now: Instant) -> Option<Duration> {
        let map = lock(&self.accounts);
        let f = map.get(&name_key(account))?;
        [f.operator_until, f.muted_until]
            .into_iter()
            .flatten()
            .filter(|u| *u > now)
            .max()
            .map(|u| u - now)
    }
}

/// The flood rules for one message, operator mutes first.
fn decide(f: &mut Flood, l: &MessageLimits, cost: f64, now: Instant) -> Verdict {
    if let Some(until) = f.operator_until {
        if until > now {
            // Not the sender's flooding: no tokens taken, no strikes counted.
            return Verdict::MutedByOperator(until - now);
        }
        f.operator_until = None;
    }
    if let Some(until) = f.muted_until {
        if until > now {
            f.strikes += 1;
            if f.strikes >= l.strikes_to_mute {
                return escalate(f, l, now);
            }
            return Verdict::Muted(until - now);
        }
        f.muted_until = None;
        // A mute that ended long ago no longer counts towards the next one.
        if now.saturating_duration_since(until) > l.mute_base * 20 {
            f.mutes = 0;
        }
    }
    match f.bucket.try_take_n(cost, l.rate, l.burst, now) {
        Ok(()) => {
            f.strikes = 0;
            Verdict::Allow
        }
        Err(wait) => {
            f.strikes += 1;
            if f.strikes >= l.strikes_to_mute {
                escalate(f, l, now)
            } else {
                Verdict::Limited(wait)
            }
        }
    }
}

fn escalate(f: &mut Flood, l: &MessageLimits, now: Instant) -> Verdict {
    f.strikes = 0;
    if f.mutes >= l.max_mutes {
        f.mutes = 0;
        f.muted_until = None;
        return Verdict::Disconnect;
    }
    let period = l.mute_base * 2u32.saturating_pow(f.mutes);
    f.mutes += 1;
    f.muted_until = Some(now + period);
    Verdict::Muted(period)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> MessageLimits {
        MessageLimits {
            rate: 5.0,
            burst: 10.0,
            strikes_to_mute: 5,
            mute_base: Duration::from_secs(10),
            max_mutes: 2,
        }
    }

    #[test]
    fn an_account_on_two_nodes_gets_half_the_burst_and_rate_on_each() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        for _ in 0..5 {
            assert_eq!(lim.check_shared("a", 2, t0), Verdict::Allow);
        }
        assert_eq!(
            lim.check_shared("a", 2, t0),
            Verdict::Limited(Duration::from_millis(400)),
            "two tokens a message at five a second"
        );
        assert_eq!(
            lim.check_shared("a", 2, t0 + Duration::from_millis(400)),
            Verdict::Allow
        );
        // More nodes than the burst still lets a message through now and then.
        assert_eq!(lim.check_shared("b", 50, t0), Verdict::Allow);
    }

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        for _ in 0..10 {
            assert_eq!(lim.check("a", t0), Verdict::Allow);
        }
        assert_eq!(
            lim.check("a", t0),
            Verdict::Limited(Duration::from_millis(200))
        );
        // 200 ms later one token has refilled.
        assert_eq!(
            lim.check("a", t0 + Duration::from_millis(200)),
            Verdict::Allow
        );
        // Other accounts are unaffected.
        assert_eq!(lim.check("b", t0), Verdict::Allow);
    }

    #[test]
    fn flood_is_muted_for_growing_periods_then_disconnected() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        for _ in 0..10 {
            lim.check("a", t0);
        }
        for _ in 0..4 {
            assert!(matches!(lim.check("a", t0), Verdict::Limited(_)));
        }
        assert_eq!(lim.check("a", t0), Verdict::Muted(Duration::from_secs(10)));
        // Still flooding while muted: the mute grows.
        for _ in 0..4 {
            assert!(matches!(lim.check("a", t0), Verdict::Muted(_)));
        }
        assert_eq!(lim.check("a", t0), Verdict::Muted(Duration::from_secs(20)));
        for _ in 0..4 {
            lim.check("a", t0);
        }
        assert_eq!(lim.check("a", t0), Verdict::Disconnect);
    }

    #[test]
    fn mute_expires() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        for _ in 0..15 {
            lim.check("a", t0);
        }
        let later = t0 + Duration::from_secs(11);
        assert_eq!(lim.check("a", later), Verdict::Allow);
    }

    #[test]
    fn operator_mute_blocks_then_expires() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        assert_eq!(lim.check("a", t0), Verdict::Allow);
        lim.mute("A", Duration::from_secs(60), t0);
        assert_eq!(
            lim.check("a", t0 + Duration::from_secs(1)),
            Verdict::MutedByOperator(Duration::from_secs(59))
        );
        assert_eq!(
            lim.muted_until("a", t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(59))
        );
        // Other accounts are unaffected.
        assert_eq!(lim.check("b", t0), Verdict::Allow);
        // A later mute replaces the end time, even with a shorter one.
        lim.mute("a", Duration::from_secs(5), t0 + Duration::from_secs(2));
        assert_eq!(
            lim.check("a", t0 + Duration::from_secs(3)),
            Verdict::MutedByOperator(Duration::from_secs(4))
        );
        let after = t0 + Duration::from_secs(7);
        assert_eq!(lim.muted_until("a", after), None);
        // Messages refused during the mute took no tokens: the whole burst is there.
        for _ in 0..10 {
            assert_eq!(lim.check("a", after), Verdict::Allow);
        }
        assert!(matches!(lim.check("a", after), Verdict::Limited(_)));
    }

    #[test]
    fn unmute_lifts_operator_and_flood_mutes() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        assert!(!lim.unmute("nobody"), "no state, nothing lifted");
        lim.mute("a", Duration::from_secs(600), t0);
        assert!(matches!(lim.check("a", t0), Verdict::MutedByOperator(_)));
        assert!(lim.unmute("A"));
        assert_eq!(lim.check("a", t0), Verdict::Allow);
        assert!(!lim.unmute("a"), "already lifted");
        // A flood mute is lifted too, and its strikes forgiven.
        for _ in 0..15 {
            lim.check("b", t0);
        }
        assert!(matches!(lim.check("b", t0), Verdict::Muted(_)));
        assert!(lim.unmute("b"));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(lim.check("b", later), Verdict::Allow);
    }

    #[test]
    fn operator_mute_does_not_escalate_flood_strikes() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        lim.mute("a", Duration::from_secs(60), t0);
        // Far more than strikes_to_mute * (max_mutes + 1) attempts: never a flood mute
        // or a disconnect.
        for _ in 0..100 {
            assert!(matches!(lim.check("a", t0), Verdict::MutedByOperator(_)));
        }
        let after = t0 + Duration::from_secs(60);
        assert_eq!(lim.check("a", after), Verdict::Allow);
        // Flood escalation starts from scratch: five strikes give the first, base mute.
        for _ in 0..9 {
            lim.check("a", after);
        }
        for _ in 0..4 {
            assert!(matches!(lim.check("a", after), Verdict::Limited(_)));
        }
        assert_eq!(
            lim.check("a", after),
            Verdict::Muted(Duration::from_secs(10))
        );
    }

    #[test]
    fn expired_operator_mutes_do_not_keep_entries_alive() {
        let t0 = Instant::now();
        let lim = MessageLimiter::new(limits());
        for i in 0..=MAX_FLOOD_ENTRIES {
            lim.mute(&format!("u{i}"), Duration::from_secs(1), t0);
        }
        lim.mute("fresh", Duration::from_secs(1), t0 + Duration::from_secs(2));
        let map = lock(&lim.accounts);
        assert_eq!(map.len(), 1, "only the new, running mute is kept");
        assert!(map.contains_key("fresh"));
    }
}
