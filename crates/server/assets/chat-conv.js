// natter browser chat (/chat): the conversations.
//
// Rooms and private conversations: the list on the left with unread and mention
// badges, the one shown, its lines (messages in msg_id order, notices), the tab title.

'use strict';

import {
  MAX_LINES, canonicalRoom, conversationsEl, el, fullTime, isMe, hhmm, lower, messagesEl,
  natter, roomKey, targetEl, userKey,
} from './chat-state.js';
import { mentionsMe, notify, renderText } from './chat-text.js';

/** A conversation: its lines (DOM elements, oldest first) and bookkeeping. */
export function makeConv(kind, name, key) {
  return {
    kind, // 'room' | 'user' | 'none'
    name, // display spelling: canonical room name, or the user's (registered) name
    key,
    lines: [], // elements, in display order; mirrors #messages when current
    ids: new Set(), // msg_ids shown, for de-duplication
    oldest: null, // smallest msg_id seen: /history pages back from there
    newest: null, // largest msg_id seen: catching up after a reconnect starts there
    resumeFrom: null, // while catching up: the newest msg_id before the connection dropped
    catchUpPages: 0, // history pages fetched by the current catch-up
    unread: 0,
    mentions: 0, // unread lines that mention the user
    li: null,
    label: null,
    badge: null,
  };
}

natter.noneConv = makeConv('none', '', '');

export function currentConv() {
  return (natter.targetKey && natter.convs.get(natter.targetKey)) || natter.noneConv;
}

export function convLabel(conv) {
  if (conv.kind === 'room') return '#' + conv.name;
  if (conv.kind === 'user') return '@' + conv.name;
  return 'no room';
}

/** The room conversation for `name`, created (and listed) if needed. */
export function ensureRoom(name) {
  const room = canonicalRoom(name);
  const key = roomKey(room);
  let conv = natter.convs.get(key);
  if (!conv) {
    conv = makeConv('room', room, key);
    natter.convs.set(key, conv);
    addListItem(conv);
  }
  return conv;
}

/**
 * The private conversation with `name`, created if needed. With `registered` the
 * name is the server's spelling and replaces a spelling the user typed.
 */
export function ensureUser(name, registered) {
  const key = userKey(name);
  let conv = natter.convs.get(key);
  if (!conv) {
    conv = makeConv('user', String(name), key);
    natter.convs.set(key, conv);
    addListItem(conv);
  } else if (registered && conv.name !== name) {
    conv.name = String(name);
    conv.li.dataset.user = conv.name;
    conv.label.textContent = convLabel(conv);
    if (natter.targetKey === key) updateTarget();
  }
  return conv;
}

/** Adds the conversation's entry to #conversations: rooms first, then users, by name. */
function addListItem(conv) {
  const li = el('li');
  if (conv.kind === 'room') li.dataset.room = conv.name;
  else li.dataset.user = conv.name;
  li.tabIndex = 0;
  li.setAttribute('role', 'button');
  conv.label = el('span', 'conv-label', convLabel(conv));
  li.append(conv.label);
  li.addEventListener('click', () => selectConv(conv.key));
  li.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      selectConv(conv.key);
    }
  });
  conv.li = li;

  const sortKey = (c) => (c.kind === 'room' ? '0' : '1') + lower(c.name);
  const mine = sortKey(conv);
  let before = null;
  for (const other of natter.convs.values()) {
    if (other === conv || !other.li || !other.li.isConnected) continue;
    if (sortKey(other) > mine && (before === null || sortKey(other) < sortKey(before))) {
      before = other;
    }
  }
  conversationsEl.insertBefore(li, before ? before.li : null);
}

export function removeConv(key) {
  const conv = natter.convs.get(key);
  if (!conv) return;
  natter.convs.delete(key);
  if (conv.li) conv.li.remove();
  updateTitle();
}

/** Makes `key` the conversation typed lines go to, and shows it. */
export function selectConv(key) {
  const conv = key ? natter.convs.get(key) : null;
  natter.targetKey = conv ? key : null;
  if (conv && conv.kind === 'room') natter.currentRoomKey = key;
  if (conv && natter.noneConv.lines.length > 0) {
    // Notices shown while there was no conversation (e.g. "logged in as") move along.
    const moved = natter.noneConv.lines;
    natter.noneConv.lines = [];
    for (const line of moved) insertLine(conv, line);
  }
  const shown = currentConv();
  shown.unread = 0;
  shown.mentions = 0;
  updateBadge(shown);
  for (const c of natter.convs.values()) {
    const active = c === shown;
    c.li.classList.toggle('active', active);
    if (active) c.li.setAttribute('aria-current', 'true');
    else c.li.removeAttribute('aria-current');
  }
  messagesEl.replaceChildren(...shown.lines);
  scrollToBottom();
  updateTarget();
  updateTitle();
}

export function updateTarget() {
  targetEl.textContent = convLabel(currentConv());
}

function updateBadge(conv) {
  if (!conv.li) return;
  if (conv.unread > 0) {
    if (!conv.badge) {
      conv.badge = el('span', 'unread');
      conv.li.append(conv.badge);
    }
    conv.badge.textContent = conv.unread > 999 ? '999+' : String(conv.unread);
    conv.badge.classList.toggle('mention', conv.mentions > 0);
    conv.badge.setAttribute('aria-label', `${conv.unread} unread` +
      (conv.mentions > 0 ? `, ${conv.mentions} mentioning you` : ''));
  } else if (conv.badge) {
    conv.badge.remove();
    conv.badge = null;
  }
  conv.li.classList.toggle('has-mention', conv.unread > 0 && conv.mentions > 0);
}

/** Shows the total of unread messages in the tab title. */
function updateTitle() {
  let total = 0;
  let mentions = 0;
  for (const c of natter.convs.values()) {
    total += c.unread;
    mentions += c.mentions;
  }
  document.title = (total > 0 ? `(${total}${mentions > 0 ? '!' : ''}) ` : '') + 'natter — chat';
}

function isNearBottom() {
  return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 48;
}

function scrollToBottom() {
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

/**
 * Inserts a line into a conversation. Messages (with a msg_id) are placed in msg_id
 * order among the other messages; notices go at the end. Keeps at most MAX_LINES.
 */
export function insertLine(conv, line, msgId) {
  let index = conv.lines.length;
  if (msgId !== undefined) {
    // Walk back over the trailing messages that are newer than this one.
    for (let i = conv.lines.length - 1; i >= 0; i--) {
      const other = conv.lines[i].dataset.msgId;
      if (other === undefined) continue;
      if (Number(other) > msgId) index = i;
      else break;
    }
  }
  const shown = conv === currentConv();
  const follow = shown && isNearBottom();
  conv.lines.splice(index, 0, line);
  if (shown) messagesEl.insertBefore(line, conv.lines[index + 1] || null);

  while (conv.lines.length > MAX_LINES) {
    const old = conv.lines.shift();
    old.remove();
    if (old.dataset.msgId !== undefined) conv.ids.delete(Number(old.dataset.msgId));
  }
  if (follow) scrollToBottom();
}

/** Adds a notice line (`cls`: '', 'error', 'system', 'help') to a conversation. */
export function notice(text, conv, cls) {
  const line = el('div', 'notice' + (cls ? ' ' + cls : ''), text);
  line.title = fullTime(Date.now());
  insertLine(conv || currentConv(), line);
}

/**
 * Adds a chat message to a conversation unless it is already there.
 * `m`: {msg_id, from, to?, room?, text, ts, late?}; `live` counts it as unread,
 * `alert` (a message that just arrived) may also notify.
 */
export function addMessage(conv, m, live, alert) {
  const msgId = Number(m.msg_id);
  const hasId = Number.isFinite(msgId) && m.msg_id !== undefined;
  if (hasId) {
    // The paging cursor counts duplicates too (a re-join re-sends what we have).
    if (conv.oldest === null || msgId < conv.oldest) conv.oldest = msgId;
    if (conv.newest === null || msgId > conv.newest) conv.newest = msgId;
    if (conv.ids.has(msgId)) return;
    conv.ids.add(msgId);
  }
  const from = String(m.from ?? '');
  const line = el('div', 'msg');
  line.dataset.from = from;
  if (conv.kind === 'room') {
    line.dataset.room = conv.name;
  } else {
    line.dataset.with = isMe(from) ? String(m.to ?? conv.name) : from;
  }
  if (hasId) line.dataset.msgId = String(msgId);
  if (isMe(from)) line.classList.add('mine');

  const ts = Number(m.ts);
  const tsEl = el('span', 'ts', Number.isFinite(ts) ? hhmm(ts) : '--:--');
  if (Number.isFinite(ts)) tsEl.title = fullTime(ts);
  const text = String(m.text ?? '');
  const textEl = el('span', 'text');
  renderText(textEl, text);
  line.append(tsEl, el('span', 'from', from), textEl);
  const mention = !isMe(from) && mentionsMe(text);
  if (mention) line.classList.add('mention');
  if (m.late === true) {
    line.classList.add('late');
    line.append(el('span', 'late-hint', '(sent while you were away)'));
  }
  insertLine(conv, line, hasId ? msgId : undefined);

  if (live && !isMe(from) && conv !== currentConv()) {
    conv.unread += 1;
    if (mention) conv.mentions += 1;
    updateBadge(conv);
    updateTitle();
  }
  if (alert && !isMe(from) && (mention || conv.kind === 'user')) notify(conv, from, text);
}

/** Forgets every conversation (a new login starts afresh). */
export function resetChat() {
  for (const item of natter.outbox) if (item.line) item.line.remove();
  natter.outbox = [];
  natter.convs = new Map();
  natter.targetKey = null;
  natter.currentRoomKey = null;
  natter.noneConv = makeConv('none', '', '');
  conversationsEl.replaceChildren();
  messagesEl.replaceChildren();
  updateTarget();
  updateTitle();
}
