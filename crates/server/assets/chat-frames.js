// natter browser chat (/chat): the frames from the server.
//
// What each frame means for the page: messages, presence, replies to requests, errors,
// joins, parts and history pages go to their conversations. Logging in, resending and
// catching up are chat-link.js.

'use strict';

import {
  DEFAULT_ROOM, canonicalRoom, el, fullTime, isMe, loginError, loginPassword, loginSubmit,
  lower, nameList, natter, roomKey, setStatus,
} from './chat-state.js';
import {
  addMessage, convLabel, currentConv, ensureRoom, ensureUser, insertLine, notice, removeConv,
  selectConv,
} from './chat-conv.js';
import {
  catchUp, catchUpStep, connected, credentialsRejected, onAuthOk, onHello, request, settle,
  transmit,
} from './chat-link.js';

/** Errors of a login with remembered credentials that mean they are no longer valid. */
const CREDENTIALS_INVALID = new Set(['auth_failed', 'banned', 'invalid_username', 'invalid_password']);

export function onFrame(c, frame) {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return;
  const pending = frame.id !== undefined ? c.pending.get(frame.id) : undefined;

  switch (frame.type) {
    case 'hello':
      return onHello(c, frame);
    case 'auth_ok':
      return onAuthOk(c, frame);
    case 'ping': {
      // MUST be answered, with the same id (none if the ping had none).
      const pong = { type: 'pong' };
      if (frame.id !== undefined) pong.id = frame.id;
      if (c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify(pong));
      return undefined;
    }
    case 'pong':
      return undefined;
    case 'bye':
      c.byeReason = String(frame.reason ?? '');
      return undefined;
    case 'error':
      return onError(c, frame, pending);
    default:
      break;
  }
  if (!c.authed) return undefined; // nothing else is expected before auth_ok

  switch (frame.type) {
    case 'public': {
      const conv = ensureRoom(frame.room ?? DEFAULT_ROOM);
      return addMessage(conv, frame, true, true);
    }
    case 'private': {
      const other = isMe(frame.from) ? frame.to : frame.from;
      const conv = ensureUser(String(other ?? ''), true);
      return addMessage(conv, frame, true, true);
    }
    case 'joined':
      return onJoined(c, frame, pending);
    case 'parted':
      return onParted(c, frame, pending);
    case 'history':
      return onHistory(c, frame, pending);
    case 'presence': {
      const conv = natter.convs.get(roomKey(frame.room ?? DEFAULT_ROOM));
      if (!conv) return undefined;
      if (frame.event === 'join') return notice(`${frame.user} joined`, conv);
      const reason = frame.reason ? ` (${frame.reason})` : '';
      return notice(`${frame.user} left${reason}`, conv);
    }
    case 'presence_summary': {
      // Large rooms announce joins and leaves together, about once a second.
      const conv = natter.convs.get(roomKey(frame.room ?? DEFAULT_ROOM));
      if (!conv) return undefined;
      const parts = [];
      const joined = Array.isArray(frame.joined) ? frame.joined : [];
      const left = Array.isArray(frame.left) ? frame.left : [];
      if (joined.length || frame.joined_more) {
        parts.push(`joined: ${nameList(joined.slice(0, 5), joined.length - Math.min(joined.length, 5) + (Number(frame.joined_more) || 0), '')}`);
      }
      if (left.length || frame.left_more) {
        parts.push(`left: ${nameList(left.slice(0, 5), left.length - Math.min(left.length, 5) + (Number(frame.left_more) || 0), '')}`);
      }
      return notice(`${parts.join('; ')} (${Number(frame.members) || 0} members)`, conv);
    }
    case 'queued': {
      if (pending) c.pending.delete(frame.id);
      if (pending && pending.outbox) settle(pending.outbox);
      const conv = ensureUser(String(frame.to ?? ''), true);
      return notice(`${frame.to} is offline; they will get it when they log in`, conv);
    }
    case 'ok':
      if (pending) c.pending.delete(frame.id);
      if (pending && pending.outbox) settle(pending.outbox);
      return undefined;
    case 'list':
      if (pending) c.pending.delete(frame.id);
      return notice(`Online: ${nameList(frame.users, frame.more, 'nobody')}`,
        replyConv(pending));
    case 'rooms': {
      if (pending) c.pending.delete(frame.id);
      const rooms = (Array.isArray(frame.rooms) ? frame.rooms : [])
        .map((r) => `#${r.name} (${r.members})`);
      return notice(`Rooms: ${nameList(rooms, frame.more, 'none')}`, replyConv(pending));
    }
    case 'who':
      if (pending) c.pending.delete(frame.id);
      return notice(`In #${frame.room}: ${nameList(frame.users, frame.more, 'nobody')}`,
        replyConv(pending));
    case 'system':
      return notice(String(frame.text ?? ''), currentConv(), 'system');
    default:
      return undefined; // unknown frame types are skipped (PROTOCOL.md §10.13)
  }
}

/** Where the answer to a request goes: where it was asked, if that still exists. */
function replyConv(pending) {
  if (pending && pending.conv &&
    (pending.conv === natter.noneConv || natter.convs.get(pending.conv.key) === pending.conv)) {
    return pending.conv;
  }
  return currentConv();
}

function onError(c, frame, pending) {
  if (pending) c.pending.delete(frame.id);
  const message = String(frame.message ?? frame.code ?? 'error');
  if (!c.authed) {
    if (c.resume) {
      // Logging in again with the remembered credentials.
      if (frame.id !== 1) return;
      if (CREDENTIALS_INVALID.has(String(frame.code))) {
        credentialsRejected(c, message);
      } else {
        c.byeReason = message; // e.g. internal: try again later
        c.ws.close(1000);
      }
      return;
    }
    // Before login every error is about logging in (or the connection ending).
    loginError.textContent = message;
    if (frame.id === 1) {
      // A failed auth: start afresh with a new connection on the next try, which
      // avoids the login timeout and the per-connection failure limit.
      c.abandoned = true;
      c.ws.close(1000);
      if (natter.conn === c) natter.conn = null;
      loginSubmit.disabled = false;
      setStatus('Not logged in');
      loginPassword.select();
    }
    return;
  }
  if (pending && pending.outbox) {
    const item = pending.outbox;
    const wait = Number(frame.retry_after_ms);
    if (frame.code === 'rate_limited' && Number.isFinite(wait) && natter.outbox.includes(item)) {
      // Not delivered; the server says when to try again (a reconnect may resend a lot).
      item.timer = setTimeout(() => {
        item.timer = null;
        if (connected() && natter.outbox.includes(item)) transmit(item);
      }, Math.max(wait, 100));
      return;
    }
    settle(item);
  }
  if (pending && pending.rejoin && frame.code === 'rate_limited') {
    // Many rooms to rejoin at once: the join limit says when to go on.
    const conv = pending.conv;
    setTimeout(() => {
      if (connected() && natter.convs.get(conv.key) === conv) {
        request('join', { room: conv.name }, { conv, rejoin: true });
      }
    }, Math.max(Number(frame.retry_after_ms) || 1000, 100));
    return;
  }
  if (pending && pending.catchUp !== undefined && pending.conv) pending.conv.resumeFrom = null;
  if (pending && pending.silent) return;
  const line = el('div', 'notice error', message);
  if (frame.code) line.dataset.code = String(frame.code);
  line.title = fullTime(Date.now());
  insertLine(replyConv(pending), line);
}

function onJoined(c, frame, pending) {
  if (pending) c.pending.delete(frame.id);
  // Rejoined after a reconnect (the lobby by itself, the others asked for).
  const rejoin = c.resume && natter.convs.has(roomKey(frame.room ?? DEFAULT_ROOM)) &&
    (pending ? pending.rejoin === true : true);
  const conv = ensureRoom(frame.room ?? DEFAULT_ROOM);
  // The history that follows starts a fresh paging cursor: what was seen before a
  // part may have a gap after it. Not after a reconnect: the catch-up fills the gap.
  if (rejoin) return catchUp(conv);
  conv.oldest = null;
  if ((pending && pending.switchTo) || natter.targetKey === null) {
    selectConv(conv.key);
  } else if (natter.currentRoomKey === null) {
    natter.currentRoomKey = conv.key;
  }
  const members = Array.isArray(frame.members) ? frame.members : [];
  const total = members.length + (Number(frame.more) > 0 ? Number(frame.more) : 0);
  notice(`joined #${conv.name} (${total} ${total === 1 ? 'member' : 'members'}: ` +
    `${nameList(members, frame.more, 'nobody')})`, conv);
}

function onParted(c, frame, pending) {
  if (pending) c.pending.delete(frame.id);
  const key = roomKey(frame.room ?? '');
  const wasTarget = natter.targetKey === key;
  removeConv(key);
  if (natter.currentRoomKey === key) {
    // Like the terminal: back to the lobby if still in it, else any room.
    natter.currentRoomKey = null;
    if (natter.convs.has(roomKey(DEFAULT_ROOM))) natter.currentRoomKey = roomKey(DEFAULT_ROOM);
    else {
      for (const conv of natter.convs.values()) {
        if (conv.kind === 'room') {
          natter.currentRoomKey = conv.key;
          break;
        }
      }
    }
  }
  if (wasTarget) selectConv(natter.currentRoomKey);
  if (pending && pending.silent) return;
  notice(`left #${canonicalRoom(frame.room ?? '')}`, currentConv());
}

function onHistory(c, frame, pending) {
  let conv;
  if (frame.room !== undefined) {
    conv = natter.convs.get(roomKey(frame.room));
    if (!conv) conv = ensureRoom(frame.room);
  } else if (frame.with !== undefined) {
    conv = ensureUser(String(frame.with), false);
  } else {
    return;
  }
  const messages = Array.isArray(frame.messages) ? frame.messages : [];
  // After a reconnect, what is newer than what was seen before counts as unread.
  const since = conv.resumeFrom;
  for (const m of messages) {
    if (typeof m !== 'object' || m === null) continue;
    if (conv.kind === 'user') {
      // `with` is echoed as typed; the messages carry the registered spelling.
      const other = isMe(m.from) ? m.to : m.from;
      if (other !== undefined && lower(other) === lower(conv.name)) ensureUser(String(other), true);
    }
    const msgId = Number(m.msg_id);
    if (pending && Number.isFinite(msgId) && (pending.min === undefined || msgId < pending.min)) {
      pending.min = msgId;
    }
    addMessage(conv, m, since !== null && Number.isFinite(msgId) && msgId > since, false);
  }
  if (pending) {
    pending.received += messages.length;
    if (frame.last === true) {
      c.pending.delete(frame.id);
      if (pending.catchUp !== undefined) return catchUpStep(conv, pending);
      if (pending.received === 0) notice(`${convLabel(conv)}: no earlier messages`, conv);
    }
  }
}
