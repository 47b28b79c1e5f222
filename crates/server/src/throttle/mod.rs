//! Login throttling that holds under concurrency.
//!
//! Every password check (chat login, registration, operator login) first takes an
//! [`Attempt`] from a [`LoginThrottle`]. Taking one reserves the attempt in three gates
//! before any hash is computed, so parallel guesses cost the same time as guesses made
//! one after another:
//!
//! - **account and address** (the pair): one attempt at a time; each waits
//!   `base_delay x 2^(n-1)` (at most `max_delay`) after the pair's `n` recent failures.
//! - **address** (any account, and registrations): attempts run side by side while the
//!   address's recent failures plus those in flight stay below `free_per_ip` (many
//!   people may share one address); beyond that, one at a time, delayed by the failures
//!   beyond the allowance.
//! - **account** (from every address): when more than `free_addrs_per_account`
//!   addresses failed on one account recently (a distributed attack), attempts from
//!   addresses that never logged in to it successfully go one at a time, delayed by the
//!   failing addresses beyond the allowance. Addresses the account logged in from
//!   recently are exempt, so a guesser elsewhere cannot lock the owner out.
//!
//! A failure on one connection never delays the owner on another address unless the
//! account is under attack from several addresses and the owner comes from a new one.
//!
//! Attempts that must wait are admitted in the order they arrived, and a finished
//! attempt wakes only those it admits: when many people behind one address log in at
//! once, each waits its turn instead of racing every other waiter at each release (a
//! race some lost for minutes in a storm of 2 000 logins; PERFORMANCE.md).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// Failed-login settings.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Delay after the first counted failure; doubles with each further one.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Failures from one address that are not delayed (shared addresses behind NAT).
    pub free_per_ip: u32,
    /// Addresses that may fail on one account before attempts on it from new addresses
    /// are serialised and delayed.
    pub free_addrs_per_account: u32,
    /// How long a failure is remembered.
    pub window: Duration,
}

/// How long a successful login makes its address known to the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Known (account, address) pairs kept before expired ones are dropped; if half of them
/// are still live then, all are forgotten (the exemption is a convenience, not a rule).
const MAX_KNOWN: usize = 400_000;
/// Failing addresses remembered per account; more count as this many.
const MAX_FAILING: usize = 256;
/// Entries kept per map before idle ones are dropped.
const MAX_ENTRIES: usize = 100_000;

/// Recent failures and attempts in flight for one key.
#[derive(Debug, Clone, Copy)]
struct Gate {
    /// Failures inside the window (as of `last`).
    failures: u32,
    /// Time of the latest failure.
    last: Instant,
    /// Attempts reserved and not yet finished.
    in_flight: u32,
}

impl Gate {
    fn new(now: Instant) -> Gate {
        Gate {
            failures: 0,
            last: now,
            in_flight: 0,
        }
    }

    /// Failures still inside the window at `now`.
    fn failures(&self, now: Instant, window: Duration) -> u32 {
        if now.saturating_duration_since(self.last) < window {
            self.failures
        } else {
            0
        }
    }

    /// Whether another attempt may start now: always when none is in flight, otherwise
    /// only while failures and attempts in flight stay inside the free allowance.
    fn admits(&self, free: u32, now: Instant, window: Duration) -> bool {
        self.in_flight == 0 || self.failures(now, window) + self.in_flight < free
    }

    fn fail(&mut self, now: Instant, window: Duration) {
        self.failures = self.failures(now, window).saturating_add(1);
        self.last = now;
    }

    /// Whether the entry can be forgotten without changing any decision.
    fn is_idle(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0 && self.failures(now, window) == 0
    }
}

/// What the throttle remembers about one account name (known or not).
#[derive(Debug, Default)]
struct Account {
    /// Addresses with recent failures on this account, with the latest failure's time.
    failing: Vec<(IpAddr, Instant)>,
    /// Attempts from addresses not known to the account that are in flight.
    in_flight: u32,
}

impl Account {
    /// Distinct addresses with a failure inside the window.
    fn pressure(&self, now: Instant, window: Duration) -> u32 {
        let n = self
            .failing
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(*t) < window)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn is_idle(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0 && self.pressure(now, window) == 0
    }
}

/// Everything the throttle knows, behind one lock so that a reservation in all three
/// gates is atomic.
#[derive(Default)]
struct State {
    /// By (case-folded account, address).
    pairs: HashMap<(String, IpAddr), Gate>,
    /// By source address.
    addrs: HashMap<IpAddr, Gate>,
    /// By case-folded account name: accounts with failures or attempts in flight.
    accounts: HashMap<String, Account>,
    /// (account, address) pairs that logged in successfully, by a keyed hash of the
    /// pair (a few bytes each: every account that logs in has one), with the time in
    /// seconds since the throttle started.
    known: HashMap<u64, u32>,
    /// Attempts waiting for their gates, oldest first.
    waiting: VecDeque<Waiter>,
    /// Reservations made for waiters that have not taken them yet, by waiter id.
    granted: HashMap<u64, Grant>,
    /// The next waiter's id.
    next_waiter: u64,
}

/// An attempt waiting for its gates to admit it.
struct Waiter {
    /// Its id, for [`State::granted`].
    id: u64,
    /// Case-folded account name; `None` for registrations.
    account: Option<String>,
    /// Source address.
    ip: IpAddr,
    /// Wakes the waiting task once it is admitted.
    waker: Waker,
}

/// What a reservation decided: whether the address is known to the account, and the
/// delay before the password check.
#[derive(Debug, Clone, Copy)]
struct Grant {
    known: bool,
    delay: Duration,
}

/// Growing, concurrency-proof delays for password checks (see the module documentation).
pub struct LoginThrottle {
    /// Settings.
    limits: LoginLimits,
    /// Failures, reservations and waiting attempts.
    state: Mutex<State>,
    /// Keys the hash of known pairs, so nobody can choose colliding names.
    hasher: std::collections::hash_map::RandomState,
    /// Where the seconds of known pairs count from.
    started: Instant,
}

/// A reserved password check. Finish it with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropping it unfinished releases the reservation without
/// counting anything (the peer went away before it learnt the answer).
#[must_use = "an attempt must be finished with failed() or succeeded()"]
pub struct Attempt<'a> {
    /// The throttle it was taken from.
    throttle: &'a LoginThrottle,
    /// Case-folded account name; `None` for registrations (address gate only).
    account: Option<String>,
    /// Source address.
    ip: IpAddr,
    /// Whether the address is known to the account (exempt from the account gate).
    known: bool,
    /// How long to wait before checking the password.
    delay: Duration,
}

impl LoginThrottle {
    /// A throttle with these settings.
    pub fn new(limits: LoginLimits) -> LoginThrottle {
        LoginThrottle {
            limits,
            state: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            started: Instant::now(),
        }
    }

    /// Reserves an attempt for `account` (case-folded name; `None` for a registration)
    /// from `ip`, waiting while the gates say earlier attempts must finish first (those
    /// waiting are admitted in the order they asked). Then wait [`Attempt::delay`]
    /// before checking the password.
    pub async fn begin(&self, account: Option<&str>, ip: IpAddr) -> Attempt<'_> {
        // Set once queued: dropping the future then leaves the queue (see `Queued`).
        let mut queued: Option<Queued<'_>> = None;
        std::future::poll_fn(|cx| {
            let mut st = self.lock();
            let grant = match &mut queued {
                Some(q) => match st.granted.remove(&q.id) {
                    Some(grant) => {
                        q.live = false;
                        grant
                    }
                    None => {
                        if let Some(w) = st.waiting.iter_mut().find(|w| w.id == q.id)
                            && !w.waker.will_wake(cx.waker())
                        {
                            w.waker = cx.waker().clone();
                        }
                        return Poll::Pending;
                    }
                },
                None => {
                    let now = Instant::now();
                    prune(&mut st, now, self.limits.window);
                    match self.reserve(&mut st, account, ip, now) {
                        Some(grant) => grant,
                        None => {
                            let id = st.next_waiter;
                            st.next_waiter += 1;
                            st.waiting.push_back(Waiter {
                                id,
                                account: account.map(str::to_string),
                                ip,
                                waker: cx.waker().clone(),
                            });
                            queued = Some(Queued::new(self, id, account, ip));
                            return Poll::Pending;
                        }
                    }
                }
            };
            Poll::Ready(self.attempt(account.map(str::to_string), ip, grant))
        })
        .await
    }

    /// Reserves an attempt if the gates allow one to start at `now`.
    pub fn try_begin(
        &self,
        account: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Option<Attempt<'_>> {
        let grant = {
            let mut st = self.lock();
            prune(&mut st, now, self.limits.window);
            self.reserve(&mut st, account, ip, now)?
        };
        Some(self.attempt(account.map(str::to_string), ip, grant))
    }

    /// The attempt a reservation made.
    fn attempt(&self, account: Option<String>, ip: IpAddr, grant: Grant) -> Attempt<'_> {
        Attempt {
            throttle: self,
            account,
            ip,
            known: grant.known,
            delay: grant.delay,
        }
    }

    /// Reserves an attempt in every gate if they all allow one to start at `now`.
    fn reserve(
        &self,
        st: &mut State,
        account: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Option<Grant> {
        let l = &self.limits;
        let w = l.window;
        let addr = st.addrs.get(&ip).copied().unwrap_or(Gate::new(now));
        if !addr.admits(l.free_per_ip, now, w) {
            return None;
        }
        let mut steps = addr.failures(now, w).saturating_sub(l.free_per_ip);
        let mut known = false;
        if let Some(name) = account {
            let pair = st
                .pairs
                .get(&(name.to_string(), ip))
                .copied()
                .unwrap_or(Gate::new(now));
            // The pair has no allowance: its attempts always go one at a time.
            if !pair.admits(0, now, w) {
                return None;
            }
            steps = steps.max(pair.failures(now, w));
            known = self.is_known(st, name, ip, now);
            if !known && let Some(acc) = st.accounts.get(name) {
                let free = l.free_addrs_per_account;
                let pressure = acc.pressure(now, w);
                if acc.in_flight > 0 && pressure + acc.in_flight >= free {
                    return None;
                }
                steps = steps.max(pressure.saturating_sub(free));
            }
            st.pairs
                .entry((name.to_string(), ip))
                .or_insert(Gate::new(now))
                .in_flight += 1;
            if !known {
                st.accounts.entry(name.to_string()).or_default().in_flight += 1;
            }
        }
        st.addrs.entry(ip).or_insert(Gate::new(now)).in_flight += 1;
        Some(Grant {
            known,
            delay: self.delay_for(steps),
        })
    }

    /// Admits, oldest first, every waiting attempt the gates now allow; returns the
    /// wakers of those admitted, to be woken once the lock is released.
    fn admit_waiting(&self, st: &mut State, now: Instant) -> Vec<Waker> {
        let mut woken = Vec::new();
        let mut waiting = std::mem::take(&mut st.waiting);
        waiting.retain(
            |w| match self.reserve(st, w.account.as_deref(), w.ip, now) {
                Some(grant) => {
                    st.granted.insert(w.id, grant);
                    woken.push(w.waker.clone());
                    false
                }
                None => true,
            },
        );
        st.waiting = waiting;
        woken
    }

    /// The key of an (account, address) pair in the known map.
    fn pair_hash(&self, account: &str, ip: IpAddr) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((account, ip))
    }

    /// Seconds from the throttle's start to `t`.
    fn secs(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.started).as_secs()).unwrap_or(u32::MAX)
    }

    /// Whether `account` logged in from `ip` within [`KNOWN_FOR`].
    fn is_known(&self, st: &State, account: &str, ip: IpAddr, now: Instant) -> bool {
        st.known
            .get(&self.pair_hash(account, ip))
            .is_some_and(|at| self.secs(now).saturating_sub(*at) < KNOWN_FOR.as_secs() as u32)
    }

    /// The delay after `failures` counted failures.
    fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - 1);
        self.limits
            .base_delay
            .saturating_mul(factor)
            .min(self.limits.max_delay)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counters cannot be left inconsistent by a panic; recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Attempt<'_> {
    /// How long to wait before checking the password.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Records a wrong password (or, for a registration, a name that was taken).
    pub fn failed(self, now: Instant) {
        let w = self.throttle.limits.window;
        let mut st = self.throttle.lock();
        st.addrs
            .entry(self.ip)
            .or_insert(Gate::new(now))
            .fail(now, w);
        if let Some(name) = &self.account {
            st.pairs
                .entry((name.clone(), self.ip))
                .or_insert(Gate::new(now))
                .fail(now, w);
            let acc = st.accounts.entry(name.clone()).or_default();
            match acc.failing.iter_mut().find(|(a, _)| *a == self.ip) {
                Some(entry) => entry.1 = now,
                None => {
                    acc.failing
                        .retain(|(_, t)| now.saturating_duration_since(*t) < w);
                    if acc.failing.len() < MAX_FAILING {
                        acc.failing.push((self.ip, now));
                    }
                }
            }
        }
    }

    /// Records a correct password: the pair's failures are forgiven and the address
    /// becomes known to the account (exempt from its gate). The address's own failures
    /// stay: others behind it may still be guessing.
    pub fn succeeded(self, now: Instant) {
        let Some(name) = &self.account else {
            return;
        };
        let mut st = self.throttle.lock();
        if let Some(pair) = st.pairs.get_mut(&(name.clone(), self.ip)) {
            pair.failures = 0;
        }
        if let Some(acc) = st.accounts.get_mut(name) {
            acc.failing.retain(|(a, _)| *a != self.ip);
        }
        let th = self.throttle;
        if st.known.len() >= MAX_KNOWN {
            let (now_s, ttl) = (th.secs(now), KNOWN_FOR.as_secs() as u32);
            st.known.retain(|_, at| now_s.saturating_sub(*at) < ttl);
            // Still half full of live pairs: forget them all rather than scan again at
            // the next login (each scan must pay for many inserts).
            if st.known.len() >= MAX_KNOWN / 2 {
                st.known.clear();
            }
        }
        st.known.insert(th.pair_hash(name, self.ip), th.secs(now));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let woken = {
            let now = Instant::now();
            let w = self.throttle.limits.window;
            let mut st = self.throttle.lock();
            // Entries that no longer change any decision go at once: a server with many
            // successful logins must not keep a few hundred bytes per account here.
            release(&mut st.addrs, &self.ip, now, w);
            if let Some(name) = &self.account {
                release(&mut st.pairs, &(name.clone(), self.ip), now, w);
                if let Some(acc) = st.accounts.get_mut(name) {
                    if !self.known {
                        acc.in_flight = acc.in_flight.saturating_sub(1);
                    }
                    if acc.is_idle(now, w) {
                        st.accounts.remove(name);
                    }
                }
            }
            self.throttle.admit_waiting(&mut st, now)
        };
        for waker in woken {
            waker.wake();
        }
    }
}

/// A waiting [`LoginThrottle::begin`]'s place in the queue. Dropped before its attempt
/// was taken (the peer went away), it leaves the queue, or gives back the reservation
/// made for it.
struct Queued<'a> {
    throttle: &'a LoginThrottle,
    id: u64,
    /// The waiter's account and address, to give a reservation back.
    account: Option<String>,
    ip: IpAddr,
    /// Cleared once the attempt was taken: nothing to give back then.
    live: bool,
}

impl<'a> Queued<'a> {
    fn new(throttle: &'a LoginThrottle, id: u64, account: Option<&str>, ip: IpAddr) -> Queued<'a> {
        Queued {
            throttle,
            id,
            account: account.map(str::to_string),
            ip,
            live: true,
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let th = self.throttle;
        let grant = {
            let mut st = th.lock();
            st.waiting.retain(|w| w.id != self.id);
            st.granted.remove(&self.id)
        };
        // Admitted but never taken: the reservation is released as an unfinished
        // attempt's would be, which admits the next in line.
        if let Some(grant) = grant {
            drop(th.attempt(self.account.take(), self.ip, grant));
        }
    }
}

/// Ends one attempt in flight on `key`'s gate, dropping the gate if it is idle now.
fn release<K: std::hash::Hash + Eq>(
    gates: &mut HashMap<K, Gate>,
    key: &K,
    now: Instant,
    window: Duration,
) {
    if let Some(g) = gates.get_mut(key) {
        g.in_flight = g.in_flight.saturating_sub(1);
        if g.is_idle(now, window) {
            gates.remove(key);
        }
    }
}

/// Drops idle entries once a map is large, so memory stays bounded; entries with
/// attempts in flight or failures inside the window are kept.
fn prune(st: &mut State, now: Instant, window: Duration) {
    if st.pairs.len() >= MAX_ENTRIES {
        st.pairs.retain(|_, g| !g.is_idle(now, window));
    }
    if st.addrs.len() >= MAX_ENTRIES {
        st.addrs.retain(|_, g| !g.is_idle(now, window));
    }
    if st.accounts.len() >= MAX_ENTRIES {
        st.accounts.retain(|_, a| !a.is_idle(now, window));
    }
}

#[cfg(test)]
mod tests;
