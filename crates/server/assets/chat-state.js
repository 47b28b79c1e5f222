// natter browser chat (/chat): the shared state, the page's elements and small helpers.
//
// The one object the chat's modules share their state through (`natter`), the constants
// and elements more than one of them uses, and small helpers for names, times and
// elements. It imports nothing; chat.js, the page's entry point, lists the others.

'use strict';

// ---- constants ---------------------------------------------------------------

/** Lines kept per conversation; older ones are dropped. */
export const MAX_LINES = 1000;
export const DEFAULT_ROOM = 'lobby';

// ---- elements ----------------------------------------------------------------

const $ = (id) => document.getElementById(id);
export const loginForm = $('login-form');
export const loginUser = $('login-user');
export const loginPassword = $('login-password');
export const loginRegister = $('login-register');
export const loginSubmit = $('login-submit');
export const loginError = $('login-error');
export const statusEl = $('status');
export const chatEl = $('chat');
export const conversationsEl = $('conversations');
export const targetEl = $('target');
export const messagesEl = $('messages');
export const inputForm = $('input-form');
export const inputEl = $('input');
export const sendButton = $('send');
export const reconnectButton = $('reconnect-now');

// ---- shared state ------------------------------------------------------------

/** What the chat's modules share and change. */
export const natter = {
  // -- connection state --

  /**
   * The current connection, or null. Each connection gets its own object so that late
   * events of an abandoned socket are recognised (`conn !== c`) and ignored.
   * @type {null | {ws: WebSocket, user: string, password: string, register: boolean,
   *   authed: boolean, me: string, nextId: number, pending: Map<number, object>,
   *   byeReason: string|null, abandoned: boolean, sawHello: boolean}}
   */
  conn: null,

  /**
   * The logged-in account, kept in memory for the page's life only (never in storage)
   * so that a dropped connection can log in again by itself; null when logged out or
   * when the credentials stopped working.
   * @type {null | {user: string, password: string}}
   */
  session: null,

  /**
   * Messages (public and private) sent but not yet acknowledged (`ok`, `queued` or an
   * error), oldest first. Each has its own random `client_id`, so resending one after a
   * reconnect never stores it twice (PROTOCOL.md §4.2, "Retrying").
   */
  outbox: [],

  /** Set by request() when it refused a command because the connection is down. */
  refusedOffline: false,

  // -- chat state (reset at each login) --

  /** Conversations by key: `room:NAME` (canonical) or `user:NAME` (lower case). */
  convs: new Map(),
  /** Key of the conversation typed lines go to (and which is shown), or null. */
  targetKey: null,
  /** Key of the current room: where `/msg public`, `/part` and `/who` point. */
  currentRoomKey: null,
  /**
   * Lines shown when there is no conversation at all (in no room, no private chat);
   * made by chat-conv.js when it loads.
   */
  noneConv: null,
};

// ---- small helpers -----------------------------------------------------------

export const lower = (s) => String(s).toLowerCase();
export const canonicalRoom = (name) => lower(String(name).replace(/^#/, ''));
export const roomKey = (name) => 'room:' + canonicalRoom(name);
export const userKey = (name) => 'user:' + lower(name);
export const isMe = (name) =>
  natter.conn !== null && natter.conn.me !== '' && lower(name) === lower(natter.conn.me);
const pad2 = (n) => String(n).padStart(2, '0');
export const byteLength = (s) => new TextEncoder().encode(s).length;

/** HH:MM in local time. */
export function hhmm(ts) {
  const d = new Date(ts);
  return pad2(d.getHours()) + ':' + pad2(d.getMinutes());
}

/** A full local date and time, for tooltips. */
export function fullTime(ts) {
  return new Date(ts).toLocaleString();
}

/** Creates an element with an optional class and text (always via textContent). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** "a, b, c", "a, b and 3 more", or `empty` when there is nobody. */
export function nameList(names, more, empty) {
  const list = (Array.isArray(names) ? names : []).map(String).join(', ');
  const extra = Number(more) > 0 ? Number(more) : 0;
  if (extra > 0) return list ? `${list} and ${extra} more` : `${extra} more`;
  return list || empty;
}

export function setStatus(text, kind) {
  statusEl.textContent = text;
  statusEl.classList.toggle('bad', kind === 'bad');
  statusEl.classList.toggle('good', kind === 'good');
}
