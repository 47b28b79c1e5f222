//! The login throttle's tests: delays, gates, the waiting queue's order, memory bounds.

use super::*;

fn limits() -> LoginLimits {
    LoginLimits {
        base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(30),
        free_per_ip: 5,
        free_addrs_per_account: 3,
        window: Duration::from_secs(900),
    }
}

fn ip(last: u8) -> IpAddr {
    [10, 0, 0, last].into()
}

/// One attempt after another, each failing; returns the delays they were given.
fn fail_in_turn(
    th: &LoginThrottle,
    account: &str,
    from: IpAddr,
    n: usize,
    t: Instant,
) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let a = th.try_begin(Some(account), from, t).expect("free to start");
            let d = a.delay();
            a.failed(t);
            d
        })
        .collect()
}

#[test]
fn delays_grow_per_account_and_address_and_cap() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    let seen = fail_in_turn(&th, "alice", ip(1), 11, t0);
    assert_eq!(seen[0], Duration::ZERO);
    assert_eq!(seen[1], Duration::from_millis(250));
    assert_eq!(seen[2], Duration::from_millis(500));
    assert_eq!(seen[3], Duration::from_secs(1));
    assert_eq!(seen[10], Duration::from_secs(30));
    // Failures expire after the window.
    let later = t0 + Duration::from_secs(901);
    let a = th.try_begin(Some("alice"), ip(1), later).expect("start");
    assert_eq!(a.delay(), Duration::ZERO);
}

#[test]
fn parallel_attempts_of_one_pair_go_one_at_a_time() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    let first = th.try_begin(Some("alice"), ip(1), t0).expect("first");
    assert!(
        th.try_begin(Some("alice"), ip(1), t0).is_none(),
        "second waits"
    );
    first.failed(t0);
    let second = th.try_begin(Some("alice"), ip(1), t0).expect("now free");
    assert_eq!(
        second.delay(),
        Duration::from_millis(250),
        "counted as the next guess"
    );
    // Dropping an unfinished attempt frees the gate without counting a failure.
    drop(second);
    let third = th.try_begin(Some("alice"), ip(1), t0).expect("free again");
    assert_eq!(third.delay(), Duration::from_millis(250));
}

#[test]
fn the_owner_elsewhere_is_not_delayed_by_one_guessing_address() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    fail_in_turn(&th, "alice", ip(1), 20, t0);
    let _busy = th
        .try_begin(Some("alice"), ip(1), t0)
        .expect("attacker's next");
    let owner = th.try_begin(Some("alice"), ip(2), t0).expect("not queued");
    assert_eq!(owner.delay(), Duration::ZERO);
    owner.succeeded(t0);
}

#[test]
fn an_address_may_run_its_allowance_in_parallel_then_goes_one_at_a_time() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    // Five different accounts at once from one address (a shared NAT) all start.
    let running: Vec<_> = (0..5)
        .map(|i| {
            th.try_begin(Some(&format!("user{i}")), ip(1), t0)
                .expect("allowance")
        })
        .collect();
    assert!(th.try_begin(Some("user5"), ip(1), t0).is_none());
    assert!(th.try_begin(None, ip(1), t0).is_none(), "registrations too");
    for a in running {
        a.failed(t0);
    }
    let a = th.try_begin(Some("user6"), ip(1), t0).expect("alone now");
    assert_eq!(a.delay(), Duration::ZERO, "five failures are free");
    a.failed(t0);
    let r = th.try_begin(None, ip(1), t0).expect("a registration");
    assert_eq!(r.delay(), Duration::from_millis(250));
    assert!(
        th.try_begin(Some("user7"), ip(1), t0).is_none(),
        "one at a time"
    );
    r.failed(t0);
    let a = th.try_begin(Some("user7"), ip(1), t0).expect("next");
    assert_eq!(a.delay(), Duration::from_millis(500));
}

#[test]
fn a_distributed_attack_slows_new_addresses_but_not_known_ones() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    let owner = th.try_begin(Some("alice"), ip(100), t0).expect("owner");
    owner.succeeded(t0);
    for i in 1..=5 {
        fail_in_turn(&th, "alice", ip(i), 1, t0);
    }
    // Five failing addresses, three free: a new address waits two steps.
    let newcomer = th.try_begin(Some("alice"), ip(50), t0).expect("start");
    assert_eq!(newcomer.delay(), Duration::from_millis(500));
    assert!(
        th.try_begin(Some("alice"), ip(51), t0).is_none(),
        "new addresses go one at a time"
    );
    // The owner's known address is neither queued nor delayed.
    let owner = th.try_begin(Some("alice"), ip(100), t0).expect("owner");
    assert_eq!(owner.delay(), Duration::ZERO);
    owner.succeeded(t0);
    drop(newcomer);
    assert!(th.try_begin(Some("alice"), ip(51), t0).is_some());
}

#[test]
fn a_successful_login_leaves_only_its_known_address() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    th.try_begin(Some("alice"), ip(1), t0)
        .expect("start")
        .succeeded(t0);
    drop(th.try_begin(Some("bob"), ip(1), t0).expect("start"));
    let st = th.lock();
    assert!(st.pairs.is_empty() && st.addrs.is_empty() && st.accounts.is_empty());
    assert_eq!(st.known.len(), 1, "alice's known address");
    drop(st);
    assert!(th.is_known(&th.lock(), "alice", ip(1), t0));
    assert!(!th.is_known(&th.lock(), "alice", ip(2), t0));
    assert!(!th.is_known(&th.lock(), "bob", ip(1), t0));
}

#[test]
fn memory_stays_bounded_without_losing_live_entries() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    for i in 0..MAX_ENTRIES {
        let a = th
            .try_begin(Some(&format!("u{i}")), ip(1), t0)
            .expect("start");
        a.failed(t0);
    }
    let live = th.try_begin(Some("live"), ip(2), t0).expect("start");
    let later = t0 + Duration::from_secs(901);
    let _next = th.try_begin(Some("next"), ip(3), later).expect("start");
    let st = th.lock();
    assert!(
        st.pairs.len() < 10,
        "idle entries dropped: {}",
        st.pairs.len()
    );
    assert!(st.pairs.contains_key(&("live".to_string(), ip(2))));
    drop(st);
    drop(live);
}

/// Five attempts from one address, holding its free allowance.
fn hold_allowance(th: &LoginThrottle, t0: Instant) -> Vec<Attempt<'_>> {
    (0..5)
        .map(|i| {
            th.try_begin(Some(&format!("held{i}")), ip(1), t0)
                .expect("free to start")
        })
        .collect()
}

#[tokio::test]
async fn a_released_place_goes_to_the_oldest_waiter_not_a_newcomer() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    let mut held = hold_allowance(&th, t0);
    let mut waiter = Box::pin(th.begin(Some("waiter"), ip(1)));
    assert!(futures::poll!(waiter.as_mut()).is_pending(), "queued");
    drop(held.pop());
    // The waiter has not run since, yet the place is already its own.
    assert!(
        th.try_begin(Some("newcomer"), ip(1), Instant::now())
            .is_none(),
        "a newcomer cannot take the place the oldest waiter was given"
    );
    let attempt = waiter.await;
    assert_eq!(attempt.delay(), Duration::ZERO);
    drop(attempt);
    assert!(
        th.try_begin(Some("newcomer"), ip(1), Instant::now())
            .is_some()
    );
}

#[tokio::test]
async fn waiting_attempts_are_admitted_in_the_order_they_came() {
    let t0 = Instant::now();
    let th = std::sync::Arc::new(LoginThrottle::new(limits()));
    let held = hold_allowance(&th, t0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (th2, tx2) = (th.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let (name, late_name) = (format!("w{i}"), format!("late{i}"));
            let attempt = th2.begin(Some(&name), ip(1)).await;
            let _ = tx2.send(i);
            // Another login from the address arrives as this one finishes.
            let late = th2.begin(Some(&late_name), ip(1));
            drop(attempt);
            drop(late.await);
        }));
        // Bounded: each task queues itself at its first poll.
        for _ in 0..100 {
            if th.lock().waiting.len() > i {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(th.lock().waiting.len(), i + 1, "waiter {i} queued");
    }
    drop(held);
    let mut order = Vec::new();
    for _ in 0..20 {
        let i = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("admitted in time")
            .expect("a task");
        order.push(i);
    }
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    for t in tasks {
        t.await.expect("task");
    }
    let st = th.lock();
    assert!(st.waiting.is_empty() && st.granted.is_empty());
    assert!(st.addrs.is_empty(), "every place given back");
}

#[tokio::test]
async fn a_waiter_that_goes_away_gives_its_place_back() {
    let t0 = Instant::now();
    let th = LoginThrottle::new(limits());
    let mut held = hold_allowance(&th, t0);
    // Gone while queued: it leaves the queue.
    let mut gone = Box::pin(th.begin(Some("gone"), ip(1)));
    assert!(futures::poll!(gone.as_mut()).is_pending());
    drop(gone);
    assert!(th.lock().waiting.is_empty());
    // Gone after it was admitted but before it took the attempt: the reservation
    // is released, and the next waiter gets it.
    let mut admitted = Box::pin(th.begin(Some("admitted"), ip(1)));
    assert!(futures::poll!(admitted.as_mut()).is_pending());
    let mut next = Box::pin(th.begin(Some("next"), ip(1)));
    assert!(futures::poll!(next.as_mut()).is_pending());
    drop(held.pop());
    assert_eq!(th.lock().granted.len(), 1, "admitted, not yet taken");
    drop(admitted);
    let next = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("the place passed on");
    drop(next);
    drop(held);
    let st = th.lock();
    assert!(st.addrs.is_empty() && st.pairs.is_empty() && st.granted.is_empty());
}
