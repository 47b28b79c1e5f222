// natter browser chat (/chat).
//
// Speaks the JSON protocol of docs/PROTOCOL.md over the WebSocket at /ws: one JSON
// frame per text message, in both directions. Typed lines mirror the terminal client
// (README "Commands"). Everything that comes from the network (names, texts, reasons,
// error messages) is untrusted: it is only ever put into the page with textContent.

'use strict';

(() => {
  // ---- constants ---------------------------------------------------------------

  /** Lines kept per conversation; older ones are dropped. */
  const MAX_LINES = 1000;
  /** The protocol's line limit: a longer frame would make the server close the connection. */
  const MAX_FRAME_BYTES = 16384;
  /** The `/history` count bounds (the server's maximum is 200). */
  const MAX_HISTORY = 200;
  /** User names (PROTOCOL.md §7.1); room names add one optional leading '#' (§7.3). */
  const USER_RE = /^[A-Za-z0-9_-]{1,32}$/;
  const DEFAULT_ROOM = 'lobby';
  /** Reconnection back-off: the first wait, the longest, and the jitter (±20 %). */
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 60000;
  const RETRY_JITTER = 0.2;
  /** A connection that has not logged in after this long is given up and retried. */
  const LOGIN_TIMEOUT_MS = 15000;
  /** History fetched per request when catching up after a reconnect (the server's maximum). */
  const CATCH_UP_PAGE = 200;
  /** Typed lines remembered for Up/Down. */
  const MAX_INPUT_HISTORY = 100;
  /** Errors of a login with remembered credentials that mean they are no longer valid. */
  const CREDENTIALS_INVALID = new Set(['auth_failed', 'banned', 'invalid_username', 'invalid_password']);
  /** http(s) URLs in message text; anything else (javascript:, data:, ...) stays text. */
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  const HELP = [
    'TEXT               send TEXT to the current room, or to the user you focus on',
    '/join ROOM         join ROOM (created if missing) and make it the current room',
    '/part [ROOM]       leave ROOM (default: the current room)',
    '/rooms             list the rooms with how many users are in each',
    '/who [ROOM]        list who is in ROOM (default: the current room)',
    '/history [N]       show N earlier messages of this conversation (default 50, at most 200)',
    '/history USER [N]  show N earlier messages of your private conversation with USER',
    '/msg USER TEXT     send TEXT privately to USER',
    '/msg USER          talk privately to USER: plain lines go to USER until /msg public',
    '/msg public        go back to talking in the current room',
    '/list              show who is online',
    '/help              show this help',
    '/exit, /quit       leave the chat',
    '//TEXT             send TEXT starting with a single / (//shrug sends /shrug)',
    'Room names are like user names, with an optional # (#rust and Rust are the same).',
    'Click a conversation on the left to write there; Up and Down recall earlier lines.',
  ];

  // ---- elements ----------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const loginForm = $('login-form');
  const loginUser = $('login-user');
  const loginPassword = $('login-password');
  const loginRegister = $('login-register');
  const loginSubmit = $('login-submit');
  const loginError = $('login-error');
  const statusEl = $('status');
  const chatEl = $('chat');
  const conversationsEl = $('conversations');
  const targetEl = $('target');
  const messagesEl = $('messages');
  const inputForm = $('input-form');
  const inputEl = $('input');
  const sendButton = $('send');
  const reconnectButton = $('reconnect-now');

  // ---- connection state --------------------------------------------------------

  /**
   * The current connection, or null. Each connection gets its own object so that late
   * events of an abandoned socket are recognised (`conn !== c`) and ignored.
   * @type {null | {ws: WebSocket, user: string, password: string, register: boolean,
   *   authed: boolean, me: string, nextId: number, pending: Map<number, object>,
   *   byeReason: string|null, abandoned: boolean, sawHello: boolean}}
   */
  let conn = null;

  /**
   * The logged-in account, kept in memory for the page's life only (never in storage)
   * so that a dropped connection can log in again by itself; null when logged out or
   * when the credentials stopped working.
   * @type {null | {user: string, password: string}}
   */
  let session = null;

  /** The reconnection schedule: attempts since the last login, the timer, when. */
  const retry = { attempt: 0, timer: null, ticker: null, at: 0, reason: '' };

  /**
   * Messages (public and private) sent but not yet acknowledged (`ok`, `queued` or an
   * error), oldest first. Each has its own random `client_id`, so resending one after a
   * reconnect never stores it twice (PROTOCOL.md §4.2, "Retrying").
   */
  let outbox = [];

  /** Typed lines for Up/Down, oldest first; `historyPos` is the one shown (or length). */
  const inputHistory = [];
  let historyPos = 0;
  let historyDraft = '';

  /** Matches a whole-word mention of the logged-in user, or null. */
  let mentionRe = null;

  /** Set by request() when it refused a command because the connection is down. */
  let refusedOffline = false;

  // ---- chat state (reset at each login) ----------------------------------------

  /** Conversations by key: `room:NAME` (canonical) or `user:NAME` (lower case). */
  let convs = new Map();
  /** Key of the conversation typed lines go to (and which is shown), or null. */
  let targetKey = null;
  /** Key of the current room: where `/msg public`, `/part` and `/who` point. */
  let currentRoomKey = null;
  /** Lines shown when there is no conversation at all (in no room, no private chat). */
  let noneConv = makeConv('none', '', '');

  // ---- small helpers -----------------------------------------------------------

  const lower = (s) => String(s).toLowerCase();
  const canonicalRoom = (name) => lower(String(name).replace(/^#/, ''));
  const roomKey = (name) => 'room:' + canonicalRoom(name);
  const userKey = (name) => 'user:' + lower(name);
  const isMe = (name) => conn !== null && conn.me !== '' && lower(name) === lower(conn.me);
  const pad2 = (n) => String(n).padStart(2, '0');
  const byteLength = (s) => new TextEncoder().encode(s).length;

  /** HH:MM in local time. */
  function hhmm(ts) {
    const d = new Date(ts);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  }

  /** A full local date and time, for tooltips. */
  function fullTime(ts) {
    return new Date(ts).toLocaleString();
  }

  /** Creates an element with an optional class and text (always via textContent). */
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /** "a, b, c", "a, b and 3 more", or `empty` when there is nobody. */
  function nameList(names, more, empty) {
    const list = (Array.isArray(names) ? names : []).map(String).join(', ');
    const extra = Number(more) > 0 ? Number(more) : 0;
    if (extra > 0) return list ? `${list} and ${extra} more` : `${extra} more`;
    return list || empty;
  }

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.classList.toggle('bad', kind === 'bad');
    statusEl.classList.toggle('good', kind === 'good');
  }

  // ---- conversations -----------------------------------------------------------

  /** A conversation: its lines (DOM elements, oldest first) and bookkeeping. */
  function makeConv(kind, name, key) {
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

  function currentConv() {
    return (targetKey && convs.get(targetKey)) || noneConv;
  }

  function convLabel(conv) {
    if (conv.kind === 'room') return '#' + conv.name;
    if (conv.kind === 'user') return '@' + conv.name;
    return 'no room';
  }

  /** The room conversation for `name`, created (and listed) if needed. */
  function ensureRoom(name) {
    const room = canonicalRoom(name);
    const key = roomKey(room);
    let conv = convs.get(key);
    if (!conv) {
      conv = makeConv('room', room, key);
      convs.set(key, conv);
      addListItem(conv);
    }
    return conv;
  }

  /**
   * The private conversation with `name`, created if needed. With `registered` the
   * name is the server's spelling and replaces a spelling the user typed.
   */
  function ensureUser(name, registered) {
    const key = userKey(name);
    let conv = convs.get(key);
    if (!conv) {
      conv = makeConv('user', String(name), key);
      convs.set(key, conv);
      addListItem(conv);
    } else if (registered && conv.name !== name) {
      conv.name = String(name);
      conv.li.dataset.user = conv.name;
      conv.label.textContent = convLabel(conv);
      if (targetKey === key) updateTarget();
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
    for (const other of convs.values()) {
      if (other === conv || !other.li || !other.li.isConnected) continue;
      if (sortKey(other) > mine && (before === null || sortKey(other) < sortKey(before))) {
        before = other;
      }
    }
    conversationsEl.insertBefore(li, before ? before.li : null);
  }

  function removeConv(key) {
    const conv = convs.get(key);
    if (!conv) return;
    convs.delete(key);
    if (conv.li) conv.li.remove();
    updateTitle();
  }

  /** Makes `key` the conversation typed lines go to, and shows it. */
  function selectConv(key) {
    const conv = key ? convs.get(key) : null;
    targetKey = conv ? key : null;
    if (conv && conv.kind === 'room') currentRoomKey = key;
    if (conv && noneConv.lines.length > 0) {
      // Notices shown while there was no conversation (e.g. "logged in as") move along.
      const moved = noneConv.lines;
      noneConv.lines = [];
      for (const line of moved) insertLine(conv, line);
    }
    const shown = currentConv();
    shown.unread = 0;
    shown.mentions = 0;
    updateBadge(shown);
    for (const c of convs.values()) {
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

  function updateTarget() {
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
    for (const c of convs.values()) {
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
  function insertLine(conv, line, msgId) {
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
  function notice(text, conv, cls) {
    const line = el('div', 'notice' + (cls ? ' ' + cls : ''), text);
    line.title = fullTime(Date.now());
    insertLine(conv || currentConv(), line);
  }

  /**
   * Puts `text` into `container` as text nodes, with http(s) URLs as links. Built with
   * DOM calls only: nothing from the message is ever parsed as HTML, and a URL whose
   * scheme is not http or https (javascript:, data:, ...) stays plain text.
   */
  function renderText(container, text) {
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      const start = match.index;
      const url = trimUrl(match[0]);
      const link = safeLink(url);
      if (!link) continue;
      if (start > last) container.append(document.createTextNode(text.slice(last, start)));
      container.append(link);
      last = start + url.length;
    }
    if (last < text.length) container.append(document.createTextNode(text.slice(last)));
  }

  /** Drops what usually ends a sentence after a URL: punctuation, an unbalanced ')'. */
  function trimUrl(url) {
    let u = url;
    for (;;) {
      const end = u.slice(-1);
      if ('.,;:!?\'"'.includes(end)) u = u.slice(0, -1);
      else if (end === ')' && (u.match(/\(/g) || []).length < (u.match(/\)/g) || []).length) {
        u = u.slice(0, -1);
      } else break;
    }
    return u;
  }

  /** An <a> opening an http(s) URL in a new tab without access to this page, or null. */
  function safeLink(url) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      return null;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
    const a = el('a', 'link', url);
    a.href = parsed.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }

  /** Whether `text` mentions the logged-in user: the name as a whole word, any case. */
  function mentionsMe(text) {
    return mentionRe !== null && mentionRe.test(String(text));
  }

  function setMentionName(name) {
    // User names are letters, digits, '_' and '-'; a word boundary is anything else.
    const escaped = String(name).replace(/[^A-Za-z0-9_]/g, (ch) => '\\' + ch);
    mentionRe = name ? new RegExp(`(^|[^A-Za-z0-9_-])${escaped}(?![A-Za-z0-9_-])`, 'i') : null;
  }

  /** A desktop notification, when allowed and the tab is not being looked at. */
  function notify(conv, from, text) {
    if (!document.hidden || typeof Notification === 'undefined') return;
    if (Notification.permission !== 'granted') return;
    try {
      const title = conv.kind === 'room' ? `${from} in #${conv.name}` : `${from} (private)`;
      const n = new Notification(title, { body: String(text).slice(0, 300), tag: conv.key });
      n.addEventListener('click', () => {
        window.focus();
        if (convs.get(conv.key) === conv) selectConv(conv.key);
        n.close();
      });
    } catch (err) {
      console.warn('natter: cannot show a notification:', err && err.message);
    }
  }

  /** Asks for the permission to notify; only from a user's action (a click, a key). */
  function askNotificationPermission() {
    if (typeof Notification === 'undefined' || Notification.permission !== 'default') return;
    try {
      const asked = Notification.requestPermission();
      if (asked && typeof asked.catch === 'function') asked.catch(() => {});
    } catch {
      // Old browsers without the promise form: no notifications then.
    }
  }

  /**
   * Adds a chat message to a conversation unless it is already there.
   * `m`: {msg_id, from, to?, room?, text, ts, late?}; `live` counts it as unread,
   * `alert` (a message that just arrived) may also notify.
   */
  function addMessage(conv, m, live, alert) {
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
  function resetChat() {
    for (const item of outbox) if (item.line) item.line.remove();
    outbox = [];
    convs = new Map();
    targetKey = null;
    currentRoomKey = null;
    noneConv = makeConv('none', '', '');
    conversationsEl.replaceChildren();
    messagesEl.replaceChildren();
    updateTarget();
    updateTitle();
  }

  // ---- sending -----------------------------------------------------------------

  function connected() {
    return conn !== null && conn.authed && conn.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame; refuses (with a notice) frames longer than the protocol allows. */
  function sendFrame(frame, conv) {
    if (!connected()) {
      if (session) {
        refusedOffline = true;
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
    conn.ws.send(json);
    return true;
  }

  /**
   * Sends a request with the next numeric id, remembering what it was for so that the
   * reply (or error) can be shown in the right conversation.
   */
  function request(type, fields, info) {
    if (!connected()) {
      sendFrame({ type }, (info && info.conv) || currentConv()); // says why not
      return;
    }
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
  function sendMessage(type, fields, conv) {
    const item = { type, fields, clientId: newClientId(), conv, line: null, timer: null };
    const size = byteLength(JSON.stringify(messageFrame(item, 2 ** 31)));
    if (size > MAX_FRAME_BYTES) {
      notice(`message too long (${size} bytes encoded, at most ${MAX_FRAME_BYTES}); it was not sent`,
        conv, 'error');
      return;
    }
    outbox.push(item);
    if (connected()) {
      transmit(item);
    } else {
      const target = type === 'public' ? conv : ensureUser(fields.to, false);
      item.line = el('div', 'msg pending');
      item.line.dataset.clientId = item.clientId;
      item.line.append(el('span', 'ts', '--:--'), el('span', 'from', session ? session.user : ''),
        el('span', 'text', fields.text), el('span', 'late-hint', '(not sent yet: waiting for the connection)'));
      insertLine(target, item.line);
    }
  }

  function messageFrame(item, id) {
    return Object.assign({ type: item.type, id }, item.fields, { client_id: item.clientId });
  }

  /** Sends an outbox message on the current connection. */
  function transmit(item) {
    const id = conn.nextId++;
    conn.pending.set(id, { type: item.type, received: 0, conv: item.conv, outbox: item });
    conn.ws.send(JSON.stringify(messageFrame(item, id)));
  }

  /** The server answered about an outbox message: it leaves the outbox. */
  function settle(item) {
    const i = outbox.indexOf(item);
    if (i >= 0) outbox.splice(i, 1);
    if (item.timer) clearTimeout(item.timer);
    if (item.line) {
      for (const c of convs.values()) {
        const j = c.lines.indexOf(item.line);
        if (j >= 0) c.lines.splice(j, 1);
      }
      item.line.remove();
      item.line = null;
    }
  }

  // ---- typed lines -------------------------------------------------------------

  inputForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!connected() && !session) {
      notice('not connected; log in again', currentConv(), 'error');
      return;
    }
    const line = inputEl.value;
    rememberInput(line);
    inputEl.value = '';
    refusedOffline = false;
    handleLine(line);
    // A command that needs the server, typed while reconnecting: keep it for a retry.
    if (refusedOffline && inputEl.value === '') inputEl.value = line;
    refusedOffline = false;
    inputEl.focus();
  });

  /** Adds a typed line to the Up/Down history (not twice in a row). */
  function rememberInput(line) {
    if (line.trim() !== '' && inputHistory[inputHistory.length - 1] !== line) {
      inputHistory.push(line);
      if (inputHistory.length > MAX_INPUT_HISTORY) inputHistory.shift();
    }
    historyPos = inputHistory.length;
    historyDraft = '';
  }

  inputEl.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || e.isComposing) return;
    if (e.key === 'ArrowUp') {
      if (historyPos === 0) return;
      if (historyPos === inputHistory.length) historyDraft = inputEl.value;
      historyPos -= 1;
    } else if (e.key === 'ArrowDown') {
      if (historyPos >= inputHistory.length) return;
      historyPos += 1;
    } else {
      return;
    }
    e.preventDefault();
    inputEl.value = historyPos < inputHistory.length ? inputHistory[historyPos] : historyDraft;
    const end = inputEl.value.length;
    inputEl.setSelectionRange(end, end);
  });

  /** Parses one typed line like the terminal client does, and acts on it. */
  function handleLine(raw) {
    const line = raw.replace(/[\r\n]+$/, '');
    const start = line.replace(/^\s+/, '');
    if (start.trim() === '') return;
    if (!start.startsWith('/')) return say(line);
    const rest = start.slice(1);
    if (rest.startsWith('/')) return say(rest); // "//shrug" says "/shrug"

    const m = /^(\S*)\s*([\s\S]*)$/.exec(rest);
    const name = lower(m[1]);
    const args = m[2].trim();
    const words = args === '' ? [] : args.split(/\s+/);
    const usage = (text) => notice(text, currentConv(), 'error');
    const noArgs = () => {
      if (words.length > 0) {
        usage(`/${name} takes no arguments`);
        return false;
      }
      return true;
    };

    switch (name) {
      case 'msg':
        return msgCommand(args);
      case 'join':
        if (words.length === 0) return usage('/join needs a room: /join ROOM');
        if (words.length > 1) return usage('too many arguments; usage: /join ROOM');
        return request('join', { room: words[0] }, { switchTo: true });
      case 'part': {
        if (words.length > 1) return usage('too many arguments; usage: /part [ROOM]');
        const room = words[0] ?? currentRoomName();
        if (!room) return usage('you are in no room; use /part ROOM');
        return request('part', { room });
      }
      case 'who': {
        if (words.length > 1) return usage('too many arguments; usage: /who [ROOM]');
        const room = words[0] ?? currentRoomName();
        if (!room) return usage('you are in no room; use /who ROOM');
        return request('who', { room });
      }
      case 'history':
        return historyCommand(words);
      case 'rooms':
        if (noArgs()) request('rooms', {});
        return undefined;
      case 'list':
        if (noArgs()) request('list', {});
        return undefined;
      case 'help':
        if (noArgs()) for (const h of HELP) notice(h, currentConv(), 'help');
        return undefined;
      case 'exit':
      case 'quit':
        if (noArgs()) quit();
        return undefined;
      default:
        return usage(`unknown command '/${name}'; type /help for the commands, ` +
          'or start the line with // to send text beginning with /');
    }
  }

  function currentRoomName() {
    const conv = currentRoomKey && convs.get(currentRoomKey);
    return conv ? conv.name : null;
  }

  /** Plain text: to the current room, or privately to the focused user. */
  function say(text) {
    const conv = currentConv();
    if (conv.kind === 'room') return sendMessage('public', { room: conv.name, text }, conv);
    if (conv.kind === 'user') return sendMessage('private', { to: conv.name, text }, conv);
    return notice('you are in no room; /join ROOM', conv, 'error');
  }

  /** `/msg USER TEXT`, `/msg USER` (focus) and `/msg public` (back to the room). */
  function msgCommand(args) {
    const m = /^(\S*)\s*([\s\S]*)$/.exec(args);
    const user = m[1];
    const text = m[2];
    if (user === '') {
      return notice('/msg needs a user: /msg USER TEXT, /msg USER to talk to USER, ' +
        '/msg public to go back', currentConv(), 'error');
    }
    if (text === '' && lower(user) === 'public') {
      const room = currentRoomKey && convs.get(currentRoomKey);
      if (room) {
        selectConv(room.key);
        return notice(`back to #${room.name}`, room);
      }
      selectConv(null);
      return notice('back to no room; /join ROOM', noneConv);
    }
    if (!USER_RE.test(user)) {
      return notice(`invalid user name '${user}': user names are 1 to 32 ASCII letters, ` +
        "digits, '_' and '-'", currentConv(), 'error');
    }
    if (text === '') {
      const back = currentRoomName();
      const conv = ensureUser(user, false);
      selectConv(conv.key);
      return notice(`talking privately to ${conv.name}; /msg public to go back to ` +
        (back ? '#' + back : 'no room'), conv);
    }
    return sendMessage('private', { to: user, text }, currentConv());
  }

  /** `/history [N]`, `/history USER [N]`, `/history #ROOM [N]`. */
  function historyCommand(words) {
    const isCount = (w) => /^[0-9]+$/.test(w);
    const badCount = (w) => notice(`invalid count '${w}': /history takes a number of ` +
      `messages from 1 to ${MAX_HISTORY}`, currentConv(), 'error');
    let who = null;
    let countWord = null;
    if (words.length === 1 && isCount(words[0])) countWord = words[0];
    else if (words.length === 1) who = words[0];
    else if (words.length === 2) [who, countWord] = words;
    else if (words.length > 2) {
      return notice('too many arguments; usage: /history [N], /history USER [N] or ' +
        '/history #ROOM [N]', currentConv(), 'error');
    }
    let limit;
    if (countWord !== null) {
      limit = Number(countWord);
      if (!isCount(countWord) || limit < 1 || limit > MAX_HISTORY) return badCount(countWord);
    }

    let conv;
    if (who === null) {
      conv = currentConv(); // the conversation on screen
      if (conv.kind === 'none') {
        return notice('you are in no room; use /history USER [N] or /history #ROOM [N]',
          conv, 'error');
      }
    } else if (who.startsWith('#')) {
      conv = convs.get(roomKey(who));
      if (!conv) {
        // Not in it: let the server explain (not_in_room / invalid_room).
        return request('history', withLimit({ room: who }, limit), {});
      }
    } else {
      if (!USER_RE.test(who)) {
        return notice(`invalid user name '${who}': user names are 1 to 32 ASCII letters, ` +
          "digits, '_' and '-'", currentConv(), 'error');
      }
      conv = ensureUser(who, false);
    }
    if (conv !== currentConv()) selectConv(conv.key);

    const fields = conv.kind === 'room' ? { room: conv.name } : { with: conv.name };
    if (conv.oldest !== null) fields.before = conv.oldest;
    return request('history', withLimit(fields, limit), { conv });
  }

  function withLimit(fields, limit) {
    if (limit !== undefined) fields.limit = limit;
    return fields;
  }

  // ---- frames from the server --------------------------------------------------

  function onFrame(c, frame) {
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
        const conv = convs.get(roomKey(frame.room ?? DEFAULT_ROOM));
        if (!conv) return undefined;
        if (frame.event === 'join') return notice(`${frame.user} joined`, conv);
        const reason = frame.reason ? ` (${frame.reason})` : '';
        return notice(`${frame.user} left${reason}`, conv);
      }
      case 'presence_summary': {
        // Large rooms announce joins and leaves together, about once a second.
        const conv = convs.get(roomKey(frame.room ?? DEFAULT_ROOM));
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
    if (pending && pending.conv && (pending.conv === noneConv || convs.get(pending.conv.key) === pending.conv)) {
      return pending.conv;
    }
    return currentConv();
  }

  function onHello(c, frame) {
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

  function onAuthOk(c, frame) {
    if (c.authed) return;
    c.authed = true;
    clearTimeout(c.loginTimer);
    c.me = String(frame.user ?? c.user);
    // Kept in memory for this page only, to log in again after a dropped connection.
    session = { user: c.me, password: c.password };
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
      noneConv, 'system');
    inputEl.focus();
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
        if (conn === c) conn = null;
        loginSubmit.disabled = false;
        setStatus('Not logged in');
        loginPassword.select();
      }
      return;
    }
    if (pending && pending.outbox) {
      const item = pending.outbox;
      const wait = Number(frame.retry_after_ms);
      if (frame.code === 'rate_limited' && Number.isFinite(wait) && outbox.includes(item)) {
        // Not delivered; the server says when to try again (a reconnect may resend a lot).
        item.timer = setTimeout(() => {
          item.timer = null;
          if (connected() && outbox.includes(item)) transmit(item);
        }, Math.max(wait, 100));
        return;
      }
      settle(item);
    }
    if (pending && pending.rejoin && frame.code === 'rate_limited') {
      // Many rooms to rejoin at once: the join limit says when to go on.
      const conv = pending.conv;
      setTimeout(() => {
        if (connected() && convs.get(conv.key) === conv) {
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
    const rejoin = c.resume && convs.has(roomKey(frame.room ?? DEFAULT_ROOM)) &&
      (pending ? pending.rejoin === true : true);
    const conv = ensureRoom(frame.room ?? DEFAULT_ROOM);
    // The history that follows starts a fresh paging cursor: what was seen before a
    // part may have a gap after it. Not after a reconnect: the catch-up fills the gap.
    if (rejoin) return catchUp(conv);
    conv.oldest = null;
    if ((pending && pending.switchTo) || targetKey === null) {
      selectConv(conv.key);
    } else if (currentRoomKey === null) {
      currentRoomKey = conv.key;
    }
    const members = Array.isArray(frame.members) ? frame.members : [];
    const total = members.length + (Number(frame.more) > 0 ? Number(frame.more) : 0);
    notice(`joined #${conv.name} (${total} ${total === 1 ? 'member' : 'members'}: ` +
      `${nameList(members, frame.more, 'nobody')})`, conv);
  }

  function onParted(c, frame, pending) {
    if (pending) c.pending.delete(frame.id);
    const key = roomKey(frame.room ?? '');
    const wasTarget = targetKey === key;
    removeConv(key);
    if (currentRoomKey === key) {
      // Like the terminal: back to the lobby if still in it, else any room.
      currentRoomKey = null;
      if (convs.has(roomKey(DEFAULT_ROOM))) currentRoomKey = roomKey(DEFAULT_ROOM);
      else {
        for (const conv of convs.values()) {
          if (conv.kind === 'room') {
            currentRoomKey = conv.key;
            break;
          }
        }
      }
    }
    if (wasTarget) selectConv(currentRoomKey);
    if (pending && pending.silent) return;
    notice(`left #${canonicalRoom(frame.room ?? '')}`, currentConv());
  }

  function onHistory(c, frame, pending) {
    let conv;
    if (frame.room !== undefined) {
      conv = convs.get(roomKey(frame.room));
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

  /**
   * Catching up after a reconnect: fetches a conversation's newest messages, then pages
   * back until it reaches what was seen before the connection dropped (no gap), or the
   * oldest stored message. Duplicates are dropped by msg_id.
   */
  function catchUp(conv, before) {
    const fields = conv.kind === 'room' ? { room: conv.name } : { with: conv.name };
    fields.limit = CATCH_UP_PAGE;
    if (before !== undefined) fields.before = before;
    conv.catchUpPages = before === undefined ? 1 : conv.catchUpPages + 1;
    request('history', fields,
      { conv, catchUp: conv.resumeFrom, silent: true, page: conv.catchUpPages });
  }

  function catchUpStep(conv, pending) {
    if (convs.get(conv.key) !== conv) return;
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
    for (const item of outbox) transmit(item);
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
  function credentialsRejected(c, message) {
    c.abandoned = true;
    c.ws.close(1000);
    if (conn === c) conn = null;
    session = null;
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
    session = null;
    if (conn) {
      // A previous attempt still open: drop it.
      conn.abandoned = true;
      conn.ws.close(1000);
      conn = null;
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
    conn = c;
    // No hello and auth_ok in time (a server that accepts but does not answer): retry.
    c.loginTimer = setTimeout(() => {
      if (!c.authed && conn === c) {
        c.byeReason = 'the server did not answer';
        ws.close();
      }
    }, LOGIN_TIMEOUT_MS);

    ws.addEventListener('message', (ev) => {
      if (conn !== c || c.abandoned) return;
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

  function quit() {
    if (connected()) {
      conn.quitting = true;
      sendFrame({ type: 'quit', id: conn.nextId++ }, currentConv());
      return;
    }
    // Reconnecting: stop trying, and log out here.
    if (conn) {
      conn.abandoned = true;
      conn.ws.close(1000);
      conn = null;
    }
    loggedOut('you left the chat');
  }

  /** Back to the login form (after /quit): the chat is closed, not kept underneath. */
  function loggedOut(reason) {
    session = null;
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
    if (conn !== c || c.abandoned) return;
    conn = null;
    const reason = c.byeReason || (c.authed ? 'connection lost' :
      (c.sawHello ? 'the server closed the connection' : 'could not connect to the server'));
    inputEl.disabled = false; // typing goes on; messages wait in the outbox
    if (c.quitting) {
      loggedOut(c.byeReason === 'quit' ? 'you left the chat' : reason);
      return;
    }
    if (session) {
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
    if (!session || (conn && !conn.abandoned)) return;
    stopRetry();
    setStatus('Reconnecting…');
    connect(session.user, session.password, false, true);
  }

  if (reconnectButton) reconnectButton.addEventListener('click', reconnectNow);
  // Back online (laptop woke up, network came back): no need to wait.
  window.addEventListener('online', () => {
    if (retry.timer) reconnectNow();
  });

  // ---- start -------------------------------------------------------------------

  updateTarget();
  loginUser.focus();
})();
