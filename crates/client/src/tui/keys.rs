//! Terminal events (keys, paste, mouse) applied to the [`Model`]; no I/O, so tests press
//! keys directly.
//!
//! | key                              | does                                        |
//! |----------------------------------|---------------------------------------------|
//! | Alt+1..9                         | show buffer 1..9                            |
//! | Alt+Left/Right, Ctrl+P/N         | previous / next buffer                      |
//! | PageUp/PageDown, mouse wheel     | scroll the buffer                           |
//! | Tab                              | complete a nick, command or room            |
//! | Up/Down                          | this buffer's earlier lines                 |
//! | Ctrl-C                           | clear the line                              |
//! | Ctrl-D on an empty line          | quit (like `/exit`)                         |
//! | Alt+M, F7                        | show or hide the member list                |
//! | Enter                            | send                                        |
//! | click in the buffer list         | show that buffer                            |
//!
//! A paste of several lines sends each complete line in order; what follows the last
//! line break stays in the input line.

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
        Event::Key(key) if key.kind != KeyEventKind::Release => key_event(model, key, screen),
        Event::Paste(text) => paste(model, text),
        Event::Mouse(mouse) => {
            match mouse.kind {
                MouseEventKind::ScrollUp => model.current_buffer_mut().scroll_up(WHEEL_LINES),
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

/// A pasted text: each line before a line break is sent, the rest is typed.
fn paste(model: &mut Model, text: &str) -> Vec<Effect> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut parts: Vec<&str> = text.split('\n').collect();
    let rest = parts.pop().unwrap_or_default();
    let mut effects = Vec::new();
    for part in parts {
        model.input.insert_str(part);
        effects.extend(model.enter());
    }
    model.input.insert_str(rest);
    effects
}

/// One key press.
fn key_event(model: &mut Model, key: &KeyEvent, screen: Rect) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if key.code != KeyCode::Tab {
        model.input.reset_completion();
    }
    let page = render::page_rows(screen);
    match key.code {
        KeyCode::Char(c @ '1'..='9') if alt => {
            model.switch_to(usize::from(c as u8 - b'1'));
        }
        KeyCode::Char('0') if alt => model.switch_to(9),
        KeyCode::Char('m' | 'M') if alt => model.show_members = !model.show_members,
        KeyCode::F(7) => model.show_members = !model.show_members,
        KeyCode::Left if alt => model.prev_buffer(),
        KeyCode::Right if alt => model.next_buffer(),
        KeyCode::Char('n' | 'N') if ctrl => model.next_buffer(),
        KeyCode::Char('p' | 'P') if ctrl => model.prev_buffer(),
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
        KeyCode::PageUp => model.current_buffer_mut().scroll_up(page),
        KeyCode::PageDown => model.current_buffer_mut().scroll_down(page),
        _ => {}
    }
    Vec::new()
}
