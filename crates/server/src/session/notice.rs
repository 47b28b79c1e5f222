//! Notices: text for whoever is in a room (or online as the recipient) right now. Unlike
//! messages they are never stored, never queued for an offline user and never answered
//! (IRC's NOTICE; bots' output). The message rules still apply: text, rate and mutes are
//! checked by the command table, and the conversation logs record them.

use natter_proto::{ErrorCode, FrameId, ServerFrame, neutralize};

use super::Session;
use crate::transcript::Event;

impl Session {
    /// Delivers a notice to `room`'s members (`room` canonical, the session a member) or
    /// to `to`'s sessions, and to the sender's sessions.
    pub(super) fn notice(
        &self,
        id: Option<FrameId>,
        room: Option<String>,
        to: Option<&str>,
        text: &str,
    ) {
        let Some(me) = &self.user else { return };
        let text = neutralize(text).into_owned();
        let ts = crate::now_ms();
        match (room, to) {
            (Some(room), None) => {
                let frame = ServerFrame::Notice {
                    room: Some(room.clone()),
                    from: me.name.clone(),
                    to: None,
                    text: text.clone(),
                    ts,
                };
                self.shared.bus.send_to_room(&room, &frame);
                self.shared.emit(Event::Room {
                    room,
                    from: me.name.clone(),
                    text: format!("[notice] {text}"),
                    ts_ms: ts,
                });
            }
            (None, Some(to)) => {
                let Some(to_name) = self.shared.bus.online_name(to) else {
                    self.error(
                        id,
                        ErrorCode::UserOffline,
                        format!("'{to}' is not online; notices are not kept for later"),
                    );
                    return;
                };
                let frame = ServerFrame::Notice {
                    room: None,
                    from: me.name.clone(),
                    to: Some(to_name.clone()),
                    text: text.clone(),
                    ts,
                };
                self.shared.bus.send_to_user(&to_name, &frame);
                if !to_name.eq_ignore_ascii_case(&me.name) {
                    self.shared.bus.send_to_user(&me.name, &frame);
                }
                self.shared.emit(Event::Private {
                    from: me.name.clone(),
                    to: to_name,
                    text: format!("[notice] {text}"),
                    ts_ms: ts,
                });
            }
            _ => self.error(
                id,
                ErrorCode::BadFrame,
                "a notice names exactly one of 'room' and 'to'",
            ),
        }
    }
}
