//! Drawing the [`Model`] with ratatui: the buffer list on the left, the current buffer's
//! lines in the middle, the member list on the right (rooms, when shown and wide enough),
//! then a status line and the input line.
//!
//! Message text is already neutralised by the model; the messages are wrapped here by
//! display width (`unicode-width`), so CJK and emoji take their two columns and later text
//! stays aligned.

use natter_proto::name_key;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::model::{Buffer, BufferKind, Line, LineKind, Model};

/// Width of the buffer list on a normal terminal.
const LIST_WIDTH: u16 = 18;
/// Width of the buffer list on a narrow one.
const NARROW_LIST_WIDTH: u16 = 12;
/// Below this many columns the terminal counts as narrow.
const NARROW: u16 = 80;
/// Width of the member list.
const MEMBERS_WIDTH: u16 = 16;
/// Below this many columns the member list is not shown.
const MEMBERS_MIN: u16 = 70;

/// Colours of other people's nicks, picked by a hash of the name.
const NICK_COLOURS: &[Color] = &[
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Red,
    Color::LightCyan,
    Color::LightGreen,
    Color::LightBlue,
    Color::LightMagenta,
];

/// Where each part of the screen is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The buffer list (one buffer per row).
    pub list: Rect,
    /// The current buffer's lines.
    pub messages: Rect,
    /// The member list, when shown.
    pub members: Option<Rect>,
    /// The status line.
    pub status: Rect,
    /// The input line.
    pub input: Rect,
}

/// Splits the screen for `model`.
pub fn areas(area: Rect, model: &Model) -> Areas {
    let [main, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let list_width = if area.width < NARROW {
        NARROW_LIST_WIDTH
    } else {
        LIST_WIDTH
    };
    let show_members = model.show_members
        && area.width >= MEMBERS_MIN
        && matches!(model.current_buffer().kind, BufferKind::Room(_));
    let members_width = if show_members { MEMBERS_WIDTH } else { 0 };
    let [list, messages, members] = Layout::horizontal([
        Constraint::Length(list_width),
        Constraint::Min(1),
        Constraint::Length(members_width),
    ])
    .areas(main);
    Areas {
        list,
        messages,
        members: show_members.then_some(members),
        status,
        input,
    }
}

/// How many message rows a page is on this screen (for PageUp/PageDown).
pub fn page_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(3)).max(1)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, model: &Model) {
    let a = areas(frame.area(), model);
    draw_list(frame, a.list, model);
    draw_messages(frame, a.messages, model);
    if let Some(members) = a.members {
        draw_members(frame, members, model);
    }
    draw_status(frame, a.status, model);
    draw_input(frame, a.input, model);
}

/// The colour of a nick.
pub fn nick_colour(nick: &str, own: &str) -> Style {
    if name_key(nick) == name_key(own) {
        return Style::new().add_modifier(Modifier::BOLD);
    }
    let hash = name_key(nick).bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    Style::new().fg(NICK_COLOURS[hash as usize % NICK_COLOURS.len()])
}

/// The style of a nick: its colour, unless nick colours are off in the config.
fn nick_style(nick: &str, model: &Model) -> Style {
    if model.config.nick_colours || name_key(nick) == name_key(model.user()) {
        nick_colour(nick, model.user())
    } else {
        Style::new()
    }
}

/// Cuts `text` to at most `width` columns.
fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// The buffer list: `N name` with the unread count on the right, `!` before it for a
/// mention; the current buffer reversed.
fn draw_list(frame: &mut Frame, area: Rect, model: &Model) {
    let inner = usize::from(area.width.saturating_sub(1));
    let rows: Vec<TextLine> = model
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let count = match (b.unread, b.mention) {
                (0, _) => String::new(),
                (n, true) => format!("!{n}"),
                (n, false) => n.to_string(),
            };
            let number = format!("{}", i + 1);
            let room = inner.saturating_sub(number.width() + 1 + count.width() + 1);
            let name = fit(&b.kind.label(), room);
            let pad = inner.saturating_sub(number.width() + 1 + name.width() + count.width());
            let mut style = Style::new();
            if i == model.current {
                style = style.add_modifier(Modifier::REVERSED);
            } else if b.mention {
                style = style.fg(Color::LightRed).add_modifier(Modifier::BOLD);
            } else if b.unread > 0 {
                style = style.add_modifier(Modifier::BOLD);
            }
            let count_style = if b.mention {
                Style::new()
                    .fg(Color::LightRed)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(Color::Yellow)
            };
            TextLine::from(vec![
                Span::styled(format!("{number} {name}{}", " ".repeat(pad)), style),
                Span::styled(count, count_style),
            ])
        })
        .collect();
    let block = Block::new()
        .borders(Borders::RIGHT)
        .border_style(Style::new().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

/// One screen row of the message area: spans that together fit its width.
type Row = Vec<Span<'static>>;

/// The current buffer's lines, newest at the bottom, wrapped to the width; scrolled up by
/// the buffer's offset, with the read marker, date changes and "new messages below".
fn draw_messages(frame: &mut Frame, area: Rect, model: &Model) {
    let buffer = model.current_buffer();
    let width = usize::from(area.width);
    let height = usize::from(area.height);
    let end = buffer.lines.len().saturating_sub(buffer.scroll);
    let mut rows: Vec<Row> = Vec::new();
    let mut top_shown = true;
    // Walk back from the newest visible line until the screen is full.
    for i in (0..end).rev() {
        let line = &buffer.lines[i];
        let mut block = line_rows(line, width, model);
        if buffer.read_marker == Some(line.seq) && i > 0 {
            block.insert(0, rule("new", width, Color::LightRed));
        }
        if let Some(date) = date_change(buffer, i, model.utc_offset_secs) {
            block.insert(0, rule(&date, width, Color::DarkGray));
        }
        for row in block.into_iter().rev() {
            rows.push(row);
        }
        if rows.len() >= height {
            top_shown = false;
            break;
        }
    }
    if top_shown && rows.len() < height {
        if buffer.older.pending.is_some() {
            rows.push(rule("fetching older messages", width, Color::DarkGray));
        } else if buffer.older.done {
            rows.push(rule("no more history", width, Color::DarkGray));
        }
    }
    rows.truncate(height);
    rows.reverse();
    if buffer.new_below && !rows.is_empty() {
        let last = rows.len() - 1;
        rows[last] = rule("new messages below (PgDn)", width, Color::LightYellow);
    }
    // Bottom-aligned: pad above when the buffer is short.
    let mut lines: Vec<TextLine> = vec![TextLine::default(); height.saturating_sub(rows.len())];
    lines.extend(rows.into_iter().map(TextLine::from));
    frame.render_widget(Paragraph::new(lines), area);
}

/// The local date before line `i` when it differs from the previous dated line's.
fn date_change(buffer: &Buffer, i: usize, offset: i64) -> Option<String> {
    let ts = buffer.lines[i].ts?;
    let previous = buffer.lines[..i].iter().rev().find_map(|l| l.ts)?;
    let day = local(ts, offset).0;
    (local(previous, offset).0 != day).then_some(day)
}

/// `(YYYY-MM-DD, HH:MM)` of a Unix millisecond time in local time.
pub fn local(ts: u64, offset_secs: i64) -> (String, String) {
    let shifted = (ts as i64)
        .saturating_add(offset_secs.saturating_mul(1000))
        .max(0) as u64;
    let stamp = crate::format::utc_minute(shifted);
    let (date, time) = stamp.split_once(' ').unwrap_or((&stamp, ""));
    (date.to_string(), time.to_string())
}

/// A centred rule `──── text ────` across the width.
fn rule(text: &str, width: usize, colour: Color) -> Row {
    let text = format!(" {text} ");
    let side = width.saturating_sub(text.width()) / 2;
    let right = width.saturating_sub(side + text.width());
    vec![Span::styled(
        format!("{}{text}{}", "─".repeat(side), "─".repeat(right)),
        Style::new().fg(colour),
    )]
}

/// One buffer line as screen rows: `HH:MM <nick> text`, continuation rows indented
/// under the text.
fn line_rows(line: &Line, width: usize, model: &Model) -> Vec<Row> {
    let time = match line.ts {
        Some(ts) => model.config.time(ts, model.utc_offset_secs),
        None => " ".repeat(model.config.time(0, 0).width()),
    };
    let mut prefix: Row = vec![Span::styled(
        format!("{time} "),
        Style::new().fg(Color::DarkGray),
    )];
    let text_style = match line.kind {
        LineKind::Message if line.mention => Style::new()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD),
        LineKind::Message => Style::new(),
        LineKind::Notice => Style::new().fg(Color::LightCyan),
        LineKind::Event => Style::new().fg(Color::DarkGray),
        LineKind::Info => Style::new().fg(Color::Gray),
        LineKind::Error => Style::new().fg(Color::LightRed),
    };
    if let Some(sender) = &line.sender {
        let (open, close) = match line.kind {
            LineKind::Notice => ("-", "- "),
            _ => ("<", "> "),
        };
        let mut nick = nick_style(sender, model);
        if line.mention {
            nick = nick.add_modifier(Modifier::REVERSED);
        }
        prefix.push(Span::raw(open));
        prefix.push(Span::styled(sender.clone(), nick));
        prefix.push(Span::raw(close));
    }
    let indent: usize = prefix.iter().map(|s| s.content.width()).sum();
    // On a very narrow area continuation rows start at the left edge.
    let indent = if width > indent + 10 { indent } else { 0 };
    let mut rows = Vec::new();
    let mut row = prefix;
    let mut used: usize = row.iter().map(|s| s.content.width()).sum();
    let mut chunk = String::new();
    for c in line.text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && used > indent {
            // Break after the last space of this row when there is one, else anywhere.
            let carry = match chunk.rfind(' ') {
                Some(at) if at + 1 < chunk.len() => chunk.split_off(at + 1),
                _ => String::new(),
            };
            row.push(Span::styled(std::mem::take(&mut chunk), text_style));
            rows.push(std::mem::replace(
                &mut row,
                vec![Span::raw(" ".repeat(indent))],
            ));
            used = indent + carry.width();
            chunk = carry;
        }
        chunk.push(c);
        used += w;
    }
    row.push(Span::styled(chunk, text_style));
    rows.push(row);
    rows
}

/// The member list of the current room.
fn draw_members(frame: &mut Frame, area: Rect, model: &Model) {
    let buffer = model.current_buffer();
    let inner = usize::from(area.width.saturating_sub(1));
    let mut rows = vec![TextLine::styled(
        fit(&format!("{} members", buffer.members.len()), inner),
        Style::new().fg(Color::DarkGray),
    )];
    rows.extend(buffer.members.iter().map(|m| {
        TextLine::styled(
            fit(&crate::format::sanitize(m), inner),
            nick_style(m, model),
        )
    }));
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

/// `alice on HOST:PORT │ TLS (pinned) │ connected`, and the scroll state.
fn draw_status(frame: &mut Frame, area: Rect, model: &Model) {
    let s = &model.status;
    let mut parts = vec![format!(
        "{} on {}",
        crate::format::sanitize(model.user()),
        s.server
    )];
    if !s.security.is_empty() {
        parts.push(s.security.clone());
    }
    if !s.connection.is_empty() {
        parts.push(s.connection.clone());
    }
    if let Some(lag) = s.lag_ms {
        parts.push(format!("lag {lag} ms"));
    }
    let buffer = model.current_buffer();
    if buffer.scroll > 0 {
        parts.push(format!("scrolled up {}", buffer.scroll));
    }
    let text = fit(&format!(" {}", parts.join(" │ ")), usize::from(area.width));
    let style = Style::new().fg(Color::White).bg(Color::Blue);
    frame.render_widget(Paragraph::new(text).style(style), area);
}

/// `[#rust] > text`, scrolled sideways so the cursor stays visible.
fn draw_input(frame: &mut Frame, area: Rect, model: &Model) {
    if let Some(question) = model.paste_question() {
        let text = fit(&question, usize::from(area.width));
        let style = Style::new()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD);
        frame.render_widget(Paragraph::new(text).style(style), area);
        return;
    }
    let prompt = format!("{} > ", model.prompt());
    let width = usize::from(area.width);
    let room = width.saturating_sub(prompt.width()).max(1);
    let chars: Vec<char> = model.input.text().chars().collect();
    let cursor = model.input.cursor();
    // The first shown character: far enough right that the cursor fits.
    let mut start = 0;
    let cursor_col = |start: usize| -> usize {
        chars[start..cursor]
            .iter()
            .map(|c| c.width().unwrap_or(0))
            .sum()
    };
    while start < cursor && cursor_col(start) >= room {
        start += 1;
    }
    let shown = fit(&chars[start..].iter().collect::<String>(), room);
    let line = TextLine::from(vec![
        Span::styled(prompt.clone(), Style::new().fg(Color::LightGreen)),
        Span::raw(shown),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt.width() + cursor_col(start)).min(width.saturating_sub(1)) as u16;
    frame.set_cursor_position(Position::new(x, area.y));
}

#[cfg(test)]
mod tests;
