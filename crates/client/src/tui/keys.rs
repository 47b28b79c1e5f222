//! Terminal events (keys, paste, mouse) applied to the [`Model`]; no I/O, so tests press
//! keys directly.
//!
//! | key                              | does                                        |
//! |----------------------------------|---------------------------------------------|
//! | Alt+1..9, Alt+0 (config: on/off) | show buffer 1..10                           |
//! | Alt+Left/Right, Ctrl+P/N         | previous / next buffer (config: other keys) |
//! | PageUp/PageDown, mouse wheel     | scroll the buffer (past the top: older ones)|
//! | Tab                              | complete a nick, command or room            |
//! | Up/Down                          | this buffer's earlier lines                 |
//! | Ctrl-C                           | clear the line                              |
//! | Ctrl-D on an empty line          | quit (like `/exit`)                         |
//! | Alt+M, F7                        | show or hide the member list                |
//! | F8 (also `/mentions`)            | list recent mentions in the server buffer   |
//! | Enter                            | send                                        |
//! | click in the buffer list         | show that buffer                            |
//!
//! A paste of several lines sends each complete line in order; what follows the last
//! line break stays in the input line. More than five lines ask `send N lines? (y/n)`
//! first (see [`super::model::paste`]).

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};
use ratatui::layout::Rect;

use super::model::{Effect, Model};
use super::render;

/// How many lines one mouse wheel step scrolls.
const WHEEL_LINES: usize = 3;

/// Applies one terminal event to `model` on a screen of `screen`; returns what to do.
pub fn handle(model: &mut Model, event: &Event, screen: Rect) -> Vec<Effect> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release && model.pending_paste.is_some() => {
            paste_answer(model, key)
        }
        Event::Key(key) if key.kind != KeyEventKind::Release => key_event(model, key, screen),
        Event::Paste(text) => model.paste(text),
        Event::Mouse(mouse) => {
            match mouse.kind {
                MouseEventKind::ScrollUp => {
                    let rows = message_rows(model, screen);
                    return model.scroll_up(WHEEL_LINES, rows);
                }
                MouseEventKind::ScrollDown => model.current_buffer_mut().scroll_down(WHEEL_LINES),
                MouseEventKind::Down(MouseButton::Left) => {
                    let list = render::areas(screen, model).list;
                    if mouse.column < list.x + list.width && mouse.row >= list.y {
                        model.switch_to(usize::from(mouse.row - list.y));
                    }
                }
                _ => {}
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// A key while a long paste waits: `y` sends, `n`, Esc or Ctrl-C drops it.
fn paste_answer(model: &mut Model, key: &KeyEvent) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('y' | 'Y') if !ctrl => model.answer_paste(true),
        KeyCode::Char('n' | 'N') if !ctrl => model.answer_paste(false),
        KeyCode::Char('c' | 'C') if ctrl => model.answer_paste(false),
        KeyCode::Esc => model.answer_paste(false),
        _ => Vec::new(),
    }
}

/// How many rows the message area has.
fn message_rows(model: &Model, screen: Rect) -> usize {
    usize::from(render::areas(screen, model).messages.height)
}

/// One key press.
fn key_event(model: &mut Model, key: &KeyEvent, screen: Rect) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if key.code != KeyCode::Tab {
        model.input.reset_completion();
    }
    let page = render::page_rows(screen);
    let keys = &model.config.keys;
    if keys.next.iter().any(|k| k.matches(key)) {
        model.next_buffer();
        return Vec::new();
    }
    if keys.prev.iter().any(|k| k.matches(key)) {
        model.prev_buffer();
        return Vec::new();
    }
    let digits = keys.alt_digits;
    match key.code {
        KeyCode::Char(c @ '1'..='9') if alt && digits => {
            model.switch_to(usize::from(c as u8 - b'1'));
        }
        KeyCode::Char('0') if alt && digits => model.switch_to(9),
        KeyCode::Char('m' | 'M') if alt => model.show_members = !model.show_members,
        KeyCode::F(7) => model.show_members = !model.show_members,
        KeyCode::F(8) => model.show_mentions(),
        KeyCode::Char('c' | 'C') if ctrl => model.input.clear(),
        KeyCode::Char('d' | 'D') if ctrl => {
            if model.input.text().is_empty() {
                return vec![Effect::Quit];
            }
            model.input.delete();
        }
        KeyCode::Char('a' | 'A') if ctrl => model.input.home(),
        KeyCode::Char('e' | 'E') if ctrl => model.input.end(),
        KeyCode::Char('u' | 'U') if ctrl => model.input.clear(),
        KeyCode::Char('w' | 'W') if ctrl => model.input.delete_word(),
        KeyCode::Char('l' | 'L') if ctrl => {}
        KeyCode::Char(c) if !ctrl && !alt => model.input.insert(c),
        KeyCode::Enter => return model.enter(),
        KeyCode::Backspace => model.input.backspace(),
        KeyCode::Delete => model.input.delete(),
        KeyCode::Left => model.input.left(),
        KeyCode::Right => model.input.right(),
        KeyCode::Home => model.input.home(),
        KeyCode::End => model.input.end(),
        KeyCode::Tab => model.complete(),
        KeyCode::Up => model.history_up(),
        KeyCode::Down => model.history_down(),
        KeyCode::PageUp => return model.scroll_up(page, message_rows(model, screen)),
        KeyCode::PageDown => model.current_buffer_mut().scroll_down(page),
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crossterm::event::{MouseEvent, MouseEventKind};
    use natter_proto::{ClientFrame, ServerFrame};

    use super::*;

    const SCREEN: Rect = Rect::new(0, 0, 100, 30);

    fn press(m: &mut Model, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
        handle(m, &Event::Key(KeyEvent::new(code, modifiers)), SCREEN)
    }

    fn typed(m: &mut Model, text: &str) {
        for c in text.chars() {
            press(m, KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    fn model() -> Model {
        let mut m = Model::new("alice", 0);
        for room in ["lobby", "rust"] {
            m.on_frame(&ServerFrame::Joined {
                id: None,
                room: room.into(),
                members: vec!["alice".into()],
                more: 0,
            });
        }
        m
    }

    #[test]
    fn switching_keys() {
        let mut m = model();
        press(&mut m, KeyCode::Char('3'), KeyModifiers::ALT);
        assert_eq!(m.prompt(), "[#rust]");
        press(&mut m, KeyCode::Left, KeyModifiers::ALT);
        assert_eq!(m.prompt(), "[#lobby]");
        press(&mut m, KeyCode::Char('n'), KeyModifiers::CONTROL);
        assert_eq!(m.prompt(), "[#rust]");
        press(&mut m, KeyCode::Char('p'), KeyModifiers::CONTROL);
        press(&mut m, KeyCode::Right, KeyModifiers::ALT);
        assert_eq!(m.prompt(), "[#rust]");
        // A click on the first row of the buffer list.
        let click = MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row: 0,
            modifiers: KeyModifiers::NONE,
        };
        handle(&mut m, &Event::Mouse(click), SCREEN);
        assert_eq!(m.prompt(), "[server]");
    }

    #[test]
    fn typing_enter_ctrl_c_and_ctrl_d() {
        let mut m = model();
        typed(&mut m, "hi");
        let sent = press(&mut m, KeyCode::Enter, KeyModifiers::NONE);
        assert!(
            matches!(&sent[..], [Effect::Send(ClientFrame::Public { text, .. })] if text == "hi")
        );
        typed(&mut m, "half");
        press(&mut m, KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(m.input.text(), "");
        typed(&mut m, "x");
        assert!(press(&mut m, KeyCode::Char('d'), KeyModifiers::CONTROL).is_empty());
        press(&mut m, KeyCode::Backspace, KeyModifiers::NONE);
        assert_eq!(
            press(&mut m, KeyCode::Char('d'), KeyModifiers::CONTROL),
            [Effect::Quit]
        );
    }

    #[test]
    fn paste_sends_each_line_in_order_and_keeps_the_rest() {
        let mut m = model();
        let effects = handle(&mut m, &Event::Paste("one\r\ntwo\n\nthr".into()), SCREEN);
        let texts: Vec<_> = effects
            .iter()
            .map(|e| match e {
                Effect::Send(ClientFrame::Public { text, .. }) => text.as_str(),
                _ => "?",
            })
            .collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(m.input.text(), "thr");
    }

    #[test]
    fn scrolling_and_member_toggle() {
        let mut m = model();
        for i in 0..100 {
            m.on_frame(&ServerFrame::Public {
                msg_id: i,
                room: "rust".into(),
                from: "bob".into(),
                text: "x".into(),
                ts: 0,
            });
        }
        press(&mut m, KeyCode::Char('3'), KeyModifiers::ALT);
        press(&mut m, KeyCode::PageUp, KeyModifiers::NONE);
        assert_eq!(m.current_buffer().scroll, 27);
        let wheel = MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 50,
            row: 5,
            modifiers: KeyModifiers::NONE,
        };
        handle(&mut m, &Event::Mouse(wheel), SCREEN);
        assert_eq!(m.current_buffer().scroll, 24);
        press(&mut m, KeyCode::PageDown, KeyModifiers::NONE);
        assert_eq!(m.current_buffer().scroll, 0);
        press(&mut m, KeyCode::Char('m'), KeyModifiers::ALT);
        assert!(!m.show_members);
    }

    #[test]
    fn a_long_paste_waits_for_y_or_n() {
        let mut m = model();
        typed(&mut m, "kept ");
        let text: String = (1..=8).map(|i| format!("l{i}\n")).collect();
        assert!(handle(&mut m, &Event::Paste(text.clone()), SCREEN).is_empty());
        // Other keys do nothing while asking.
        assert!(press(&mut m, KeyCode::Enter, KeyModifiers::NONE).is_empty());
        typed(&mut m, "x");
        assert_eq!(m.input.text(), "kept ");
        let sent = press(&mut m, KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(sent.len(), 8);
        assert!(
            matches!(&sent[0], Effect::Send(ClientFrame::Public { text, .. }) if text == "kept l1")
        );
        handle(&mut m, &Event::Paste(text), SCREEN);
        assert!(press(&mut m, KeyCode::Esc, KeyModifiers::NONE).is_empty());
        assert!(m.paste_question().is_none());
    }

    #[test]
    fn f8_lists_the_mentions_in_the_server_buffer() {
        let mut m = model();
        press(&mut m, KeyCode::F(8), KeyModifiers::NONE);
        assert_eq!(m.prompt(), "[server]");
        let last = m.current_buffer().lines.last().expect("a line");
        assert_eq!(last.text, "no mentions yet");
    }

    #[test]
    fn buffer_switching_keys_follow_the_config() {
        let mut m = model();
        m.config = crate::tui::config::Config::parse(
            "[keys]\nalt_digits = false\nnext = \"f6\"\nprev = [\"f5\", \"ctrl-b\"]\n",
        )
        .expect("config");
        assert_eq!(m.prompt(), "[#lobby]");
        press(&mut m, KeyCode::Char('3'), KeyModifiers::ALT);
        assert_eq!(m.prompt(), "[#lobby]");
        press(&mut m, KeyCode::Right, KeyModifiers::ALT);
        press(&mut m, KeyCode::Char('n'), KeyModifiers::CONTROL);
        assert_eq!(m.prompt(), "[#lobby]");
        press(&mut m, KeyCode::F(6), KeyModifiers::NONE);
        assert_eq!(m.prompt(), "[#rust]");
        press(&mut m, KeyCode::Char('b'), KeyModifiers::CONTROL);
        assert_eq!(m.prompt(), "[#lobby]");
        press(&mut m, KeyCode::F(5), KeyModifiers::NONE);
        assert_eq!(m.prompt(), "[server]");
        assert_eq!(m.input.text(), "");
    }
}
