// natter browser chat (/chat): the connection to the server.
//
// The WebSocket at /ws and logging in on it, sending frames and requests, the outbox of
// messages resent with their client_id until acknowledged, reconnecting with a back-off
// after a drop, and catching up on what was said meanwhile. What the server's frames
// mean for the conversations is chat-frames.js.

'use strict';

import {
  DEFAULT_ROOM, MAX_LINES, byteLength, chatEl, el, inputEl, loginError, loginForm,
  loginPassword, loginRegister, loginSubmit, loginUser, natter, reconnectButton, roomKey,
  sendButton, setStatus, statusEl,
} from './chat-state.js';
import { askNotificationPermission, setMentionName } from './chat-text.js';
import { currentConv, ensureUser, insertLine, notice, resetChat } from './chat-conv.js';
import { onFrame } from './chat-frames.js';

// ---- constants ---------------------------------------------------------------

/** The protocol's line limit: a longer frame would make the server close the connection. */
const MAX_FRAME_BYTES = 16384;
/** Reconnection back-off: the first wait, the longest, and the jitter (±20 %). */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 60000;
const RETRY_JITTER = 0.2;
/** A connection that has not logged in after this long is given up and retried. */
const LOGIN_TIMEOUT_MS = 15000;
/** History fetched per request when catching up after a reconnect (the server's maximum). */
const CATCH_UP_PAGE = 200;

/** The reconnection schedule: attempts since the last login, the timer, when. */
const retry = { attempt: 0, timer: null, ticker: null, at: 0, reason: '' };

// ---- sending -----------------------------------------------------------------

export function connected() {
  const conn = natter.conn;
  return conn !== null && conn.authed && conn.ws.readyState === WebSocket.OPEN;
}

/** Sends one frame; refuses (with a notice) frames longer than the protocol allows. */
function sendFrame(frame, conv) {
  if (!connected()) {
    if (natter.session) {
      natter.refusedOffline = true;
      notice('not connected (reconnecting); try again when reconnected', conv, 'error');
    } else {
      notice('not connected; log in again', conv, 'error');
    }
    return false;
  }
  const json = JSON.stringify(frame);
  const size = byteLength(json);
  if (size > MAX_FRAME_BYTES) {
    notice(`message too long (${size} bytes encoded, at most ${MAX_FRAME_BYTES}); it was not sent`,
      conv, 'error');
    return false;
  }
  natter.conn.ws.send(json);
  return true;
}

/**
 * Sends a request with the next numeric id, remembering what it was for so that the
 * reply (or error) can be shown in the right conversation.
 */
export function request(type, fields, info) {
  if (!connected()) {
    sendFrame({ type }, (info && info.conv) || currentConv()); // says why not
    return;
  }
  const conn = natter.conn;
  const id = conn.nextId++;
  const conv = (info && info.conv) || currentConv();
  const frame = Object.assign({ type, id }, fields);
  conn.pending.set(id, Object.assign({ type, received: 0 }, info, { conv }));
  if (!sendFrame(frame, conv)) conn.pending.delete(id);
}

/** A fresh random client_id (128 bits, hex) for one message. */
function newClientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Sends a message (`public` or `private`) with a fresh client_id and keeps it in the
 * outbox until the server acknowledges it. While disconnected it waits there, shown
 * as a pending line, and goes out after the reconnect.
 */
export function sendMessage(type, fields, conv) {
  const item = { type, fields, clientId: newClientId(), conv, line: null, timer: null };
  const size = byteLength(JSON.stringify(messageFrame(item, 2 ** 31)));
  if (size > MAX_FRAME_BYTES) {
    notice(`message too long (${size} bytes encoded, at most ${MAX_FRAME_BYTES}); it was not sent`,
      conv, 'error');
    return;
  }
  natter.outbox.push(item);
  if (connected()) {
    transmit(item);
  } else {
    const target = type === 'public' ? conv : ensureUser(fields.to, false);
    item.line = el('div', 'msg pending');
    item.line.dataset.clientId = item.clientId;
    item.line.append(el('span', 'ts', '--:--'),
      el('span', 'from', natter.session ? natter.session.user : ''),
      el('span', 'text', fields.text), el('span', 'late-hint', '(not sent yet: waiting for the connection)'));
    insertLine(target, item.line);
  }
}

function messageFrame(item, id) {
  return Object.assign({ type: item.type, id }, item.fields, { client_id: item.clientId });
}

/** Sends an outbox message on the current connection. */
export function transmit(item) {
  const conn = natter.conn;
  const id = conn.nextId++;
  conn.pending.set(id, { type: item.type, received: 0, conv: item.conv, outbox: item });
  conn.ws.send(JSON.stringify(messageFrame(item, id)));
}

/** The server answered about an outbox message: it leaves the outbox. */
export function settle(item) {
  const i = natter.outbox.indexOf(item);
  if (i >= 0) natter.outbox.splice(i, 1);
  if (item.timer) clearTimeout(item.timer);
  if (item.line) {
    for (const c of natter.convs.values()) {
      const j = c.lines.indexOf(item.line);
      if (j >= 0) c.lines.splice(j, 1);
    }
    item.line.remove();
    item.line = null;
  }
}

// ---- logging in --------------------------------------------------------------

export function onHello(c, frame) {
  if (c.sawHello || c.authed) return;
  c.sawHello = true;
  if (frame.server !== 'natter' || frame.protocol !== 3) {
    console.warn('natter: unexpected hello', frame.server, frame.protocol);
  }
  setStatus(c.register ? 'Creating the account…' : 'Logging in…');
  // The auth request always has id 1; later requests count up from 2.
  c.ws.send(JSON.stringify({
    type: 'auth', id: 1, user: c.user, password: c.password, register: c.register,
  }));
  c.nextId = 2;
}

export function onAuthOk(c, frame) {
  if (c.authed) return;
  c.authed = true;
  clearTimeout(c.loginTimer);
  c.me = String(frame.user ?? c.user);
  // Kept in memory for this page only, to log in again after a dropped connection.
  natter.session = { user: c.me, password: c.password };
  c.password = '';
  retry.attempt = 0;
  delete statusEl.dataset.retry;
  setMentionName(c.me);
  if (c.resume) return onReconnected(c);
  resetChat();
  loginPassword.value = '';
  loginError.textContent = '';
  loginSubmit.disabled = false;
  loginForm.hidden = true;
  chatEl.hidden = false;
  inputEl.disabled = false;
  sendButton.disabled = false;
  setStatus(`Logged in as ${c.me}`, 'good');
  notice(frame.registered ? `registered and logged in as ${c.me}` : `logged in as ${c.me}`,
    natter.noneConv, 'system');
  inputEl.focus();
}

// ---- catching up after a reconnect -------------------------------------------

/**
 * Catching up after a reconnect: fetches a conversation's newest messages, then pages
 * back until it reaches what was seen before the connection dropped (no gap), or the
 * oldest stored message. Duplicates are dropped by msg_id.
 */
export function catchUp(conv, before) {
  const fields = conv.kind === 'room' ? { room: conv.name } : { with: conv.name };
  fields.limit = CATCH_UP_PAGE;
  if (before !== undefined) fields.before = before;
  conv.catchUpPages = before === undefined ? 1 : conv.catchUpPages + 1;
  request('history', fields,
    { conv, catchUp: conv.resumeFrom, silent: true, page: conv.catchUpPages });
}

export function catchUpStep(conv, pending) {
  if (natter.convs.get(conv.key) !== conv) return;
  const seen = pending.catchUp;
  const more = pending.received >= CATCH_UP_PAGE && pending.min !== undefined &&
    seen !== null && pending.min > seen + 1;
  if (more && pending.page < MAX_LINES / CATCH_UP_PAGE) return catchUp(conv, pending.min);
  if (more) notice('more was said while you were away than is shown here; /history shows earlier messages', conv);
  conv.resumeFrom = null;
  return undefined;
}

/**
 * Logged in again after a dropped connection: rejoins the rooms, resends what was
 * not acknowledged (same client_id: the server never stores it twice) and fetches
 * what was said meanwhile in every conversation.
 */
function onReconnected(c) {
  const convs = natter.convs;
  const wasInLobby = convs.has(roomKey(DEFAULT_ROOM));
  for (const conv of convs.values()) {
    // Where catching up starts; kept across several drops until a catch-up completes.
    if (conv.resumeFrom === null) conv.resumeFrom = conv.newest ?? 0;
  }
  // The lobby is joined automatically at login; the others again, in list order.
  for (const conv of convs.values()) {
    if (conv.kind === 'room' && conv.name !== DEFAULT_ROOM) {
      request('join', { room: conv.name }, { conv, rejoin: true });
    }
  }
  if (!wasInLobby) request('part', { room: DEFAULT_ROOM }, { silent: true });
  for (const item of natter.outbox) transmit(item);
  // Rooms catch up once rejoined (onJoined); private conversations at once.
  for (const conv of convs.values()) if (conv.kind === 'user') catchUp(conv);

  chatEl.hidden = false;
  loginForm.hidden = true;
  inputEl.disabled = false;
  sendButton.disabled = false;
  showRetry(false);
  setStatus(`Logged in as ${c.me} — reconnected`, 'good');
  notice('reconnected', currentConv(), 'system');
}

/** The remembered credentials stopped working (password changed, account banned). */
export function credentialsRejected(c, message) {
  c.abandoned = true;
  c.ws.close(1000);
  if (natter.conn === c) natter.conn = null;
  natter.session = null;
  stopRetry();
  resetChat();
  chatEl.hidden = true;
  loginForm.hidden = false;
  loginSubmit.disabled = false;
  loginUser.value = c.user;
  loginPassword.value = '';
  loginError.textContent = `${message} — log in again`;
  setStatus('Not logged in', 'bad');
  loginPassword.focus();
}

// ---- connection --------------------------------------------------------------

function wsUrl(path) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}

loginRegister.addEventListener('change', () => {
  loginSubmit.textContent = loginRegister.checked ? 'Create account' : 'Log in';
  loginPassword.autocomplete = loginRegister.checked ? 'new-password' : 'current-password';
});

loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  // A user's action: the one moment a browser lets a page ask to show notifications.
  askNotificationPermission();
  stopRetry();
  natter.session = null;
  if (natter.conn) {
    // A previous attempt still open: drop it.
    natter.conn.abandoned = true;
    natter.conn.ws.close(1000);
    natter.conn = null;
  }
  loginError.textContent = '';
  if (!connect(loginUser.value.trim(), loginPassword.value, loginRegister.checked, false)) return;
  loginSubmit.disabled = true;
  setStatus('Connecting…');
});

/**
 * Opens a connection that logs in as `user` (`resume`: again, after a drop, with the
 * session's credentials). Returns false if the WebSocket could not even be created.
 */
function connect(user, password, register, resume) {
  let ws;
  try {
    ws = new WebSocket(wsUrl('/ws'));
  } catch (err) {
    if (resume) scheduleRetry(`cannot connect: ${err.message}`);
    else loginError.textContent = `cannot connect: ${err.message}`;
    return false;
  }
  const c = {
    ws,
    user,
    password,
    register,
    resume,
    authed: false,
    me: '',
    nextId: 1,
    pending: new Map(),
    byeReason: null,
    abandoned: false,
    sawHello: false,
    quitting: false,
    loginTimer: null,
  };
  natter.conn = c;
  // No hello and auth_ok in time (a server that accepts but does not answer): retry.
  c.loginTimer = setTimeout(() => {
    if (!c.authed && natter.conn === c) {
      c.byeReason = 'the server did not answer';
      ws.close();
    }
  }, LOGIN_TIMEOUT_MS);

  ws.addEventListener('message', (ev) => {
    if (natter.conn !== c || c.abandoned) return;
    if (typeof ev.data !== 'string') return; // the protocol is text only
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      console.warn('natter: ignoring a message that is not JSON');
      return;
    }
    onFrame(c, frame);
  });
  ws.addEventListener('close', () => onClose(c));
  // 'error' is always followed by 'close', which does the reporting.
  return true;
}

export function quit() {
  if (connected()) {
    natter.conn.quitting = true;
    sendFrame({ type: 'quit', id: natter.conn.nextId++ }, currentConv());
    return;
  }
  // Reconnecting: stop trying, and log out here.
  if (natter.conn) {
    natter.conn.abandoned = true;
    natter.conn.ws.close(1000);
    natter.conn = null;
  }
  loggedOut('you left the chat');
}

/** Back to the login form (after /quit): the chat is closed, not kept underneath. */
function loggedOut(reason) {
  natter.session = null;
  stopRetry();
  resetChat();
  chatEl.hidden = true;
  loginForm.hidden = false;
  loginSubmit.disabled = false;
  loginPassword.value = '';
  loginError.textContent = '';
  setStatus(`Not logged in (${reason})`);
  loginPassword.focus();
}

function onClose(c) {
  clearTimeout(c.loginTimer);
  if (natter.conn !== c || c.abandoned) return;
  natter.conn = null;
  const reason = c.byeReason || (c.authed ? 'connection lost' :
    (c.sawHello ? 'the server closed the connection' : 'could not connect to the server'));
  inputEl.disabled = false; // typing goes on; messages wait in the outbox
  if (c.quitting) {
    loggedOut(c.byeReason === 'quit' ? 'you left the chat' : reason);
    return;
  }
  if (natter.session) {
    // Logged in before on this page: log in again by itself, with a back-off.
    if (c.authed || !c.resume) notice(`disconnected: ${reason}; reconnecting`, currentConv(), 'error');
    scheduleRetry(reason);
    return;
  }
  loginSubmit.disabled = false;
  inputEl.disabled = true;
  sendButton.disabled = true;
  setStatus(`Disconnected: ${reason}`, 'bad');
  // Keep a more precise error (e.g. "too many failed logins" after auth_failed).
  if (!loginError.textContent || c.byeReason) {
    loginError.textContent = loginError.textContent && c.byeReason
      ? `${loginError.textContent} (${c.byeReason})`
      : reason;
  }
}

// ---- reconnecting ------------------------------------------------------------

/** The wait before reconnection attempt `n` (0-based): 1 s doubling to 60 s, ±20 %. */
function retryDelay(n) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(n, 16));
  const jittered = base * (1 - RETRY_JITTER + Math.random() * 2 * RETRY_JITTER);
  return Math.round(Math.min(RETRY_MAX_MS, jittered));
}

function scheduleRetry(reason) {
  stopRetry();
  retry.reason = reason;
  retry.at = Date.now() + retryDelay(retry.attempt);
  retry.attempt += 1;
  statusEl.dataset.retry = String(retry.attempt); // which wait this is (1 s, 2 s, 4 s, ...)
  retry.timer = setTimeout(reconnectNow, retry.at - Date.now());
  retry.ticker = setInterval(showCountdown, 1000);
  showCountdown();
  showRetry(true);
}

function showCountdown() {
  const secs = Math.max(1, Math.ceil((retry.at - Date.now()) / 1000));
  setStatus(`Disconnected (${retry.reason}); reconnecting in ${secs} s…`, 'bad');
}

function stopRetry() {
  clearTimeout(retry.timer);
  clearInterval(retry.ticker);
  retry.timer = null;
  retry.ticker = null;
  showRetry(false);
}

function showRetry(shown) {
  if (reconnectButton) reconnectButton.hidden = !shown;
}

/** One reconnection attempt with the session's credentials. */
function reconnectNow() {
  if (!natter.session || (natter.conn && !natter.conn.abandoned)) return;
  stopRetry();
  setStatus('Reconnecting…');
  connect(natter.session.user, natter.session.password, false, true);
}

if (reconnectButton) reconnectButton.addEventListener('click', reconnectNow);
// Back online (laptop woke up, network came back): no need to wait.
window.addEventListener('online', () => {
  if (retry.timer) reconnectNow();
});
