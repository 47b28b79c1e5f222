//! Operator actions: kick, mute, ban and notices.
//!
//! Each action takes effect at once for every transport (the hub reaches terminal and
//! browser sessions alike), is written to the system log and the monitor feed, and is
//! recorded durably in the store's audit table. The web console calls these; tests
//! call them directly.

use std::time::Duration;

use natter_proto::{ServerFrame, clip, neutralize, parse_room, validate_username};

use crate::Shared;
use crate::store::{AuditEntry, StoreError};
use crate::transcript::Event;

/// Longest mute an operator can give: a week.
pub const MAX_MUTE_SECS: u64 = 7 * 86_400;

/// Why an action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such account (or, for a kick, not online).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

/// Who acts, for the audit trail.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The operator's name ("operator" for the console's single account).
    pub name: String,
    /// Where the request came from.
    pub addr: String,
}

/// Disconnects every session of `user`; returns what happened, for the operator.
pub async fn kick(
    shared: &Shared,
    by: &Operator,
    user: &str,
    reason: Option<&str>,
) -> Result<String, ActionError> {
    let name = shared
        .bus
        .online_name(user)
        .ok_or_else(|| ActionError::NotFound(format!("{} is not online", shown(user))))?;
    let reason = with_reason("kicked by an operator", reason);
    let n = shared.bus.kick(&name, &reason);
    audit(
        shared,
        by,
        "kick",
        &name,
        &format!("sessions={n} reason={reason}"),
    )
    .await?;
    Ok(format!("kicked {name} ({n} session{})", plural(n)))
}

/// Stops `user` from sending messages for `secs` seconds.
pub async fn mute(
    shared: &Shared,
    by: &Operator,
    user: &str,
    secs: u64,
) -> Result<String, ActionError> {
    if !(1..=MAX_MUTE_SECS).contains(&secs) {
        return Err(ActionError::Invalid(format!(
            "seconds must be between 1 and {MAX_MUTE_SECS}"
        )));
    }
    let name = account(shared, user).await?;
    shared.bus.mute(&name, Duration::from_secs(secs));
    shared.bus.send_to_user(
        &name,
        &ServerFrame::System {
            text: format!("an operator muted you for {secs} s"),
        },
    );
    audit(shared, by, "mute", &name, &format!("secs={secs}")).await?;
    Ok(format!("muted {name} for {secs} s"))
}

/// Lifts a mute on `user`.
pub async fn unmute(shared: &Shared, by: &Operator, user: &str) -> Result<String, ActionError> {
    let name = account(shared, user).await?;
    let was = shared.bus.unmute(&name);
    if was {
        shared.bus.send_to_user(
            &name,
            &ServerFrame::System {
                text: "an operator lifted your mute".into(),
            },
        );
    }
    audit(shared, by, "unmute", &name, &format!("was_muted={was}")).await?;
    Ok(if was {
        format!("unmuted {name}")
    } else {
        format!("{name} was not muted")
    })
}

/// Refuses `user`'s logins from now on and disconnects their sessions.
pub async fn ban(
    shared: &Shared,
    by: &Operator,
    user: &str,
    reason: Option<&str>,
) -> Result<String, ActionError> {
    let name = set_banned(shared, user, true).await?;
    let reason = with_reason("banned by an operator", reason);
    let n = shared.bus.kick(&name, &reason);
    audit(
        shared,
        by,
        "ban",
        &name,
        &format!("sessions={n} reason={reason}"),
    )
    .await?;
    Ok(format!(
        "banned {name}; {n} session{} disconnected",
        plural(n)
    ))
}

/// Lets `user` log in again.
pub async fn unban(shared: &Shared, by: &Operator, user: &str) -> Result<String, ActionError> {
    let name = set_banned(shared, user, false).await?;
    audit(shared, by, "unban", &name, "").await?;
    Ok(format!("unbanned {name}"))
}

/// Sends a system notice to everyone online, or to the members of `room`.
pub async fn notice(
    shared: &Shared,
    by: &Operator,
    text: &str,
    room: Option<&str>,
) -> Result<String, ActionError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ActionError::Invalid("the notice is empty".into()));
    }
    let max = shared.config.max_message_bytes;
    if text.len() > max {
        return Err(ActionError::Invalid(format!(
            "the notice is {} bytes; the limit is {max}",
            text.len()
        )));
    }
    let frame = ServerFrame::System {
        text: format!("[notice] {}", neutralize(text)),
    };
    let room = match room.map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(parse_room(r).map_err(|_| {
            ActionError::Invalid(format!(
                "'{}' is not a valid room name",
                neutralize(&clip(r))
            ))
        })?),
    };
    let (target, n) = match &room {
        None => ("everyone".to_string(), shared.bus.broadcast(&frame)),
        Some(r) => {
            let n = shared
                .bus
                .send_to_room(r, &frame)
                .ok_or_else(|| ActionError::NotFound(format!("#{r} has no members")))?;
            (format!("#{r}"), n)
        }
    };
    audit(
        shared,
        by,
        "notice",
        &target,
        &format!("sessions={n} text={text}"),
    )
    .await?;
    Ok(format!(
        "notice sent to {target} ({n} session{})",
        plural(n)
    ))
}

/// The display name of an existing account.
async fn account(shared: &Shared, user: &str) -> Result<String, ActionError> {
    if validate_username(user).is_ok()
        && let Some(r) = shared.store.get_user(user).await?
    {
        return Ok(r.name);
    }
    Err(ActionError::NotFound(format!(
        "no user named '{}'",
        shown(user)
    )))
}

async fn set_banned(shared: &Shared, user: &str, banned: bool) -> Result<String, ActionError> {
    if validate_username(user).is_ok()
        && let Some(name) = shared.store.set_banned(user, banned).await?
    {
        return Ok(name);
    }
    Err(ActionError::NotFound(format!(
        "no user named '{}'",
        shown(user)
    )))
}

/// Records an action in the audit table, the system log and the monitor feed.
async fn audit(
    shared: &Shared,
    by: &Operator,
    action: &'static str,
    target: &str,
    detail: &str,
) -> Result<(), ActionError> {
    let ts = crate::now_ms();
    shared
        .store
        .append_audit(AuditEntry {
            ts,
            operator: by.name.clone(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
        })
        .await?;
    let who = if target.starts_with('#') || target == "everyone" {
        format!("target={target}")
    } else {
        format!("user={target}")
    };
    let mut line = format!("{who} operator={} addr={}", by.name, by.addr);
    if !detail.is_empty() {
        line.push(' ');
        line.push_str(detail);
    }
    shared.emit(Event::System {
        kind: action,
        detail: line,
        ts_ms: ts,
    });
    Ok(())
}

/// `base`, or `base: reason` with the reason cleaned and clipped.
fn with_reason(base: &str, reason: Option<&str>) -> String {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{base}: {}", neutralize(&clip(r))),
        None => base.to_string(),
    }
}

/// A user name from a request, safe to show.
fn shown(user: &str) -> String {
    neutralize(&clip(user)).into_owned()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
