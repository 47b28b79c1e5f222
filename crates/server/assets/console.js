// natter operator console (/console).
//
// Logs in with the operator password (docs/WEB.md "Operator console"), then shows the
// live monitor (/api/admin/monitor WebSocket), the server statistics, and buttons for
// the operator actions. The session lives in an HttpOnly cookie; the CSRF token from
// login (or from GET /api/admin/session) is kept in a variable and sent as
// X-CSRF-Token with every POST. Everything from the server is put into the page with
// textContent only: user names, room names and texts are attacker-controlled.

'use strict';

(() => {
  /** Events kept in the feed, and events buffered while paused. */
  const MAX_EVENTS = 1000;
  /** Reconnection backoff for the monitor, in milliseconds. */
  const BACKOFF_MIN = 1000;
  const BACKOFF_MAX = 30000;

  // ---- elements ----------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const loginForm = $('admin-login-form');
  const passwordEl = $('admin-password');
  const loginSubmit = $('admin-login-submit');
  const loginError = $('admin-login-error');
  const consoleEl = $('console');
  const monitorStatus = $('monitor-status');
  const feed = $('feed');
  const filterUser = $('filter-user');
  const filterRoom = $('filter-room');
  const filterKind = $('filter-kind');
  const pauseButton = $('pause');
  const pausedInfo = $('paused-info');
  const pausedCount = $('paused-count');
  const statConnections = $('stat-connections');
  const statSessions = $('stat-sessions');
  const statMpm = $('stat-mpm');
  const onlineList = $('online');
  const roomsList = $('rooms-list');
  const actionUser = $('action-user');
  const actionReason = $('action-reason');
  const muteSeconds = $('mute-seconds');
  const noticeText = $('notice-text');
  const noticeRoom = $('notice-room');
  const actionResult = $('action-result');
  const auditList = $('audit');

  // ---- state -------------------------------------------------------------------

  /** The CSRF token of the current session; null when logged out. */
  let csrf = null;
  /** Whether the console (rather than the login form) is showing. */
  let loggedIn = false;
  /** The monitor WebSocket, or null. */
  let monitor = null;
  let reconnectTimer = null;
  let reconnectAttempt = 0;
  /** While paused, events are kept here (oldest first) instead of being shown. */
  let paused = false;
  let pauseBuffer = [];
  let pausedArrived = 0;
  /** Signatures of the last rendered lists, to avoid rebuilding them needlessly. */
  let lastOnline = '';
  let lastRooms = '';

  // ---- helpers -----------------------------------------------------------------

  const pad2 = (n) => String(n).padStart(2, '0');

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /** HH:MM:SS in local time. */
  function hms(ts) {
    const d = new Date(ts);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function setMonitorStatus(text, kind) {
    monitorStatus.textContent = text;
    monitorStatus.classList.toggle('good', kind === 'good');
    monitorStatus.classList.toggle('bad', kind === 'bad');
  }

  /**
   * Calls the admin API. POST bodies are JSON and carry the CSRF token. Resolves to
   * {status, ok, data} (data: the parsed JSON body, or null); rejects on network errors.
   */
  async function api(method, path, body) {
    const options = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
    if (method === 'POST') {
      options.headers['Content-Type'] = 'application/json';
      if (csrf) options.headers['X-CSRF-Token'] = csrf;
      options.body = JSON.stringify(body ?? {});
    }
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { status: response.status, ok: response.ok, data };
  }

  /** The error text of a failed API answer. */
  function errorText(r) {
    if (r.data && typeof r.data.error === 'string') return r.data.error;
    return `request failed (HTTP ${r.status})`;
  }

  // ---- login / logout ----------------------------------------------------------

  function showLogin(message) {
    loggedIn = false;
    csrf = null;
    closeMonitor();
    consoleEl.hidden = true;
    loginForm.hidden = false;
    loginError.textContent = message || '';
    loginSubmit.disabled = false;
    passwordEl.value = '';
    setMonitorStatus('Not logged in');
    passwordEl.focus();
  }

  function showConsole() {
    loggedIn = true;
    loginForm.hidden = true;
    loginError.textContent = '';
    consoleEl.hidden = false;
    reconnectAttempt = 0;
    connectMonitor();
    loadOverview();
    loadAudit();
  }

  loginForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    loginError.textContent = '';
    loginSubmit.disabled = true;
    setMonitorStatus('Logging in…');
    try {
      const r = await api('POST', '/api/admin/login', { password: passwordEl.value });
      if (r.ok && r.data && typeof r.data.csrf === 'string') {
        csrf = r.data.csrf;
        passwordEl.value = '';
        showConsole();
        return;
      }
      let message = errorText(r);
      if (r.status === 429) {
        const ms = Number(r.data && r.data.retry_after_ms);
        if (Number.isFinite(ms) && ms > 0) {
          const seconds = Math.ceil(ms / 1000);
          message += ` — try again in ${seconds} s (at ${hms(Date.now() + ms)})`;
        } else {
          message += ' — try again later';
        }
      }
      loginError.textContent = message;
      setMonitorStatus('Not logged in');
      passwordEl.select();
    } catch (err) {
      loginError.textContent = `cannot reach the server: ${err.message}`;
      setMonitorStatus('Not logged in', 'bad');
    } finally {
      loginSubmit.disabled = false;
    }
  });

  $('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/api/admin/logout', {});
    } catch {
      // Logged out locally in any case; the cookie expires on its own.
    }
    clearConsole();
    showLogin('Logged out.');
  });

  /** Forgets what the console showed (a later login starts with an empty feed). */
  function clearConsole() {
    feed.replaceChildren();
    pauseBuffer = [];
    pausedArrived = 0;
    setPaused(false);
    onlineList.replaceChildren();
    roomsList.replaceChildren();
    lastOnline = '';
    lastRooms = '';
    auditList.replaceChildren();
    actionResult.textContent = '';
    for (const s of [statConnections, statSessions, statMpm]) s.textContent = '–';
  }

  // ---- live monitor ------------------------------------------------------------

  function wsUrl(path) {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
  }

  function connectMonitor() {
    closeMonitor();
    let ws;
    try {
      ws = new WebSocket(wsUrl('/api/admin/monitor'));
    } catch (err) {
      setMonitorStatus(`Monitor: ${err.message}`, 'bad');
      return;
    }
    monitor = ws;
    setMonitorStatus('Monitor: connecting…');
    ws.addEventListener('open', () => {
      if (monitor === ws) setMonitorStatus('Monitor: live', 'good');
    });
    ws.addEventListener('message', (ev) => {
      if (monitor !== ws || typeof ev.data !== 'string') return;
      reconnectAttempt = 0; // the connection works: start the backoff afresh next time
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      onMonitorMessage(msg);
    });
    ws.addEventListener('close', () => {
      if (monitor !== ws) return; // closed on purpose
      monitor = null;
      if (loggedIn) scheduleReconnect();
    });
    // 'error' is always followed by 'close'.
  }

  function closeMonitor() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (monitor) {
      const ws = monitor;
      monitor = null;
      ws.close(1000);
    }
  }

  /**
   * Reconnects the monitor after a growing delay. Before that, asks whether the
   * session is still valid: a 401 means logging in again, not reconnecting.
   */
  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    const delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** reconnectAttempt);
    reconnectAttempt = Math.min(reconnectAttempt + 1, 10);
    setMonitorStatus(`Monitor disconnected; reconnecting in ${Math.round(delay / 1000)} s…`, 'bad');
    reconnectTimer = setTimeout(async () => {
      reconnectTimer = null;
      let r = null;
      try {
        r = await api('GET', '/api/admin/session');
      } catch {
        r = null; // server unreachable: try again later
      }
      if (!loggedIn) return;
      if (r && r.status === 401) {
        showLogin('Your session has ended; please log in again.');
        return;
      }
      if (!r || !r.ok) {
        scheduleReconnect();
        return;
      }
      if (r.data && typeof r.data.csrf === 'string') csrf = r.data.csrf;
      connectMonitor();
    }, delay);
  }

  function onMonitorMessage(msg) {
    if (typeof msg !== 'object' || msg === null) return;
    switch (msg.type) {
      case 'event':
        return receiveEvent(msg);
      case 'stats':
        return renderStats(msg);
      case 'lagged':
        return receiveEvent({
          ts: Date.now(),
          kind: 'lagged',
          detail: `the console fell behind: ${Number(msg.missed) || 0} events were skipped`,
        });
      default:
        return undefined;
    }
  }

  // ---- feed --------------------------------------------------------------------

  function receiveEvent(ev) {
    if (paused) {
      pausedArrived += 1;
      pauseBuffer.push(ev);
      if (pauseBuffer.length > MAX_EVENTS) pauseBuffer.shift();
      pausedCount.textContent = String(pausedArrived);
      return;
    }
    showEvent(ev);
  }

  /** Adds an event at the top of the feed, dropping the oldest beyond MAX_EVENTS. */
  function showEvent(ev) {
    const kind = typeof ev.kind === 'string' && ev.kind !== '' ? ev.kind : 'event';
    const row = el('div', 'event');
    row.dataset.kind = kind;
    if (ev.user !== undefined && ev.user !== null) row.dataset.user = String(ev.user);
    if (ev.room !== undefined && ev.room !== null) row.dataset.room = String(ev.room);
    if (ev.to !== undefined && ev.to !== null) row.dataset.to = String(ev.to);

    const ts = Number(ev.ts);
    const tsEl = el('span', 'ts', Number.isFinite(ts) ? hms(ts) : '');
    if (Number.isFinite(ts)) tsEl.title = new Date(ts).toLocaleString();
    let where = '';
    if (row.dataset.room !== undefined) where = '#' + row.dataset.room;
    else if (row.dataset.to !== undefined) where = '→ ' + row.dataset.to;

    const body = el('span', 'body');
    if (ev.text !== undefined && ev.text !== null) body.append(el('span', 'text', ev.text));
    if (ev.detail !== undefined && ev.detail !== null) body.append(el('span', 'detail', ev.detail));

    row.append(
      tsEl,
      el('span', 'kind', kind),
      el('span', 'user', row.dataset.user ?? ''),
      el('span', 'where', where),
      body,
    );
    row.hidden = !matchesFilters(row);

    // Keep the view steady when the operator has scrolled down to read older events.
    const keepView = feed.scrollTop > 0;
    const before = feed.scrollHeight;
    feed.prepend(row);
    while (feed.childElementCount > MAX_EVENTS) feed.lastElementChild.remove();
    if (keepView) feed.scrollTop += feed.scrollHeight - before;
  }

  /** Whether a feed row passes the user, room and kind filters. */
  function matchesFilters(row) {
    const user = filterUser.value.trim().toLowerCase();
    const room = filterRoom.value.trim().replace(/^#/, '').toLowerCase();
    const kind = filterKind.value;
    if (kind !== '' && row.dataset.kind !== kind) return false;
    if (user !== '') {
      const names = [row.dataset.user, row.dataset.to].filter((n) => n !== undefined);
      if (!names.some((n) => n.toLowerCase().includes(user))) return false;
    }
    if (room !== '') {
      if (row.dataset.room === undefined || !row.dataset.room.toLowerCase().includes(room)) {
        return false;
      }
    }
    return true;
  }

  function applyFilters() {
    for (const row of feed.children) row.hidden = !matchesFilters(row);
  }

  filterUser.addEventListener('input', applyFilters);
  filterRoom.addEventListener('input', applyFilters);
  filterKind.addEventListener('change', applyFilters);

  function setPaused(on) {
    paused = on;
    pauseButton.textContent = on ? 'Resume' : 'Pause';
    pauseButton.setAttribute('aria-pressed', on ? 'true' : 'false');
    pausedInfo.hidden = !on;
    if (!on) {
      // Show what arrived meanwhile, oldest first, so the newest ends up on top.
      const buffered = pauseBuffer;
      pauseBuffer = [];
      pausedArrived = 0;
      for (const ev of buffered) showEvent(ev);
    }
    pausedCount.textContent = String(pausedArrived);
  }

  pauseButton.addEventListener('click', () => setPaused(!paused));

  // ---- stats -------------------------------------------------------------------

  /**
   * A user's sessions by transport ({"irc": 1, "websocket": 2}) as "irc, websocket ×2";
   * empty if the server sent none.
   */
  function transportsText(transports) {
    if (!transports || typeof transports !== 'object') return '';
    return Object.keys(transports)
      .sort()
      .map((t) => {
        const n = Number(transports[t]);
        return Number.isFinite(n) && n > 1 ? `${t} ×${n}` : t;
      })
      .join(', ');
  }

  function renderStats(s) {
    const num = (v) => (Number.isFinite(Number(v)) ? String(Number(v)) : '–');
    statConnections.textContent = num(s.connections);
    statSessions.textContent = num(s.sessions);
    statMpm.textContent = num(s.messages_per_minute);

    const online = Array.isArray(s.online) ? s.online : [];
    const onlineSig = JSON.stringify(online);
    if (onlineSig !== lastOnline) {
      lastOnline = onlineSig;
      const items = online.map((o) => {
        const via = transportsText(o.transports);
        const li = el('li', null, via ? `${o.user} — ${via}` : `${o.user} (${o.sessions})`);
        li.dataset.user = String(o.user);
        li.tabIndex = 0;
        const n = num(o.sessions);
        li.title = `${n} session${n === '1' ? '' : 's'}; click to act on this user`;
        return li;
      });
      if (items.length === 0) items.push(el('li', 'empty', 'nobody online'));
      onlineList.replaceChildren(...items);
    }

    const rooms = Array.isArray(s.rooms) ? s.rooms : [];
    const roomsSig = JSON.stringify(rooms);
    if (roomsSig !== lastRooms) {
      lastRooms = roomsSig;
      const items = rooms.map((r) => {
        const li = el('li', null, `#${r.name} — ${r.members}`);
        li.dataset.room = String(r.name);
        li.tabIndex = 0;
        li.title = 'Click to send a notice to this room';
        return li;
      });
      if (items.length === 0) items.push(el('li', 'empty', 'no rooms'));
      roomsList.replaceChildren(...items);
    }
  }

  async function loadOverview() {
    try {
      const r = await api('GET', '/api/admin/overview');
      if (r.ok && r.data && loggedIn) renderStats(r.data);
    } catch {
      // The monitor's stats will come anyway.
    }
  }

  // Clicking (or pressing Enter on) an online user fills the action form; a room fills
  // the notice's room. Delegated, because the lists are rebuilt as stats arrive.
  function onListActivate(list, handler) {
    list.addEventListener('click', (e) => {
      const li = e.target.closest('li');
      if (li && list.contains(li)) handler(li);
    });
    list.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      const li = e.target.closest('li');
      if (li && list.contains(li)) {
        e.preventDefault();
        handler(li);
      }
    });
  }

  onListActivate(onlineList, (li) => {
    if (li.dataset.user === undefined) return;
    actionUser.value = li.dataset.user;
    actionUser.focus();
  });
  onListActivate(roomsList, (li) => {
    if (li.dataset.room === undefined) return;
    noticeRoom.value = li.dataset.room;
  });

  // ---- actions -----------------------------------------------------------------

  function showResult(text, ok) {
    actionResult.textContent = text;
    actionResult.classList.toggle('ok', ok);
    actionResult.classList.toggle('error', !ok);
  }

  /** POSTs an action and shows its `message` (or `error`) in #action-result. */
  async function act(button, path, body) {
    button.disabled = true;
    showResult('…', true);
    try {
      const r = await api('POST', path, body);
      if (r.status === 401) {
        showLogin('Your session has ended; please log in again.');
        return;
      }
      if (r.ok) {
        const message = r.data && typeof r.data.message === 'string' ? r.data.message : 'done';
        showResult(message, true);
      } else {
        showResult(errorText(r), false);
      }
      loadAudit();
    } catch (err) {
      showResult(`cannot reach the server: ${err.message}`, false);
    } finally {
      button.disabled = false;
    }
  }

  /** The user the action is about, or null (after saying what is missing). */
  function targetUser() {
    const user = actionUser.value.trim();
    if (user === '') {
      showResult('Enter a user name first (or click an online user).', false);
      actionUser.focus();
      return null;
    }
    return user;
  }

  /** {user, reason?}: the reason is left out when blank. */
  function userAndReason(user) {
    const body = { user };
    const reason = actionReason.value.trim();
    if (reason !== '') body.reason = reason;
    return body;
  }

  function onAction(id, handler) {
    const button = $(id);
    button.addEventListener('click', () => handler(button));
  }

  onAction('kick', (b) => {
    const user = targetUser();
    if (user) act(b, '/api/admin/kick', userAndReason(user));
  });
  onAction('ban', (b) => {
    // No confirmation dialog on purpose: the result line says what happened, and
    // Unban undoes it.
    const user = targetUser();
    if (user) act(b, '/api/admin/ban', userAndReason(user));
  });
  onAction('unban', (b) => {
    const user = targetUser();
    if (user) act(b, '/api/admin/unban', { user });
  });
  onAction('mute', (b) => {
    const user = targetUser();
    if (!user) return;
    const seconds = Number(muteSeconds.value);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 604800) {
      showResult('The mute lasts 1 to 604800 seconds (7 days).', false);
      muteSeconds.focus();
      return;
    }
    act(b, '/api/admin/mute', { user, seconds });
  });
  onAction('unmute', (b) => {
    const user = targetUser();
    if (user) act(b, '/api/admin/unmute', { user });
  });
  onAction('notice-send', (b) => {
    const text = noticeText.value;
    if (text.trim() === '') {
      showResult('Enter the notice text first.', false);
      noticeText.focus();
      return;
    }
    const body = { text };
    const room = noticeRoom.value.trim();
    if (room !== '') body.room = room;
    act(b, '/api/admin/notice', body);
  });

  // ---- audit log ---------------------------------------------------------------

  async function loadAudit() {
    let r;
    try {
      r = await api('GET', '/api/admin/audit');
    } catch {
      return;
    }
    if (!loggedIn || !r.ok || !r.data || !Array.isArray(r.data.entries)) return;
    const items = r.data.entries.map((entry) => {
      const li = el('li');
      const ts = entry.ts;
      let when = '';
      if (typeof ts === 'number' && Number.isFinite(ts)) when = new Date(ts).toLocaleString();
      else if (ts !== undefined && ts !== null) when = String(ts);
      li.append(el('span', 'ts', when), el('span', 'action', entry.action ?? ''));
      const rest = [entry.target, entry.detail].filter((v) => v !== undefined && v !== null && v !== '');
      li.append(document.createTextNode(rest.map(String).join(' — ')));
      if (entry.operator) li.title = `by ${entry.operator}`;
      return li;
    });
    if (items.length === 0) items.push(el('li', 'empty', 'no actions yet'));
    auditList.replaceChildren(...items);
  }

  $('audit-refresh').addEventListener('click', loadAudit);

  // ---- start -------------------------------------------------------------------

  (async () => {
    try {
      const r = await api('GET', '/api/admin/session');
      if (r.ok && r.data && typeof r.data.csrf === 'string') {
        csrf = r.data.csrf;
        showConsole();
      } else if (r.status === 401) {
        showLogin('');
      } else {
        showLogin(errorText(r));
      }
    } catch (err) {
      showLogin(`cannot reach the server: ${err.message}`);
    }
  })();
})();
