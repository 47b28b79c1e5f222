// natter browser chat (/chat): typed lines and commands; the page's entry point.
//
// Speaks the JSON protocol of docs/PROTOCOL.md over the WebSocket at /ws: one JSON
// frame per text message, in both directions. Typed lines mirror the terminal client
// (README "Commands"). Everything that comes from the network (names, texts, reasons,
// error messages) is untrusted: it is only ever put into the page with textContent.
//
// The chat is a handful of ES modules that share their state through one object
// (`natter`, chat-state.js): chat-state.js (shared state, elements, small helpers),
// chat-text.js (message text, links, mentions, notifications), chat-conv.js (the
// conversations), chat-link.js (the connection, logging in, the outbox, reconnecting,
// catching up), chat-frames.js (the frames from the server) and this one (typed lines
// and commands, and the start).

'use strict';

import { inputEl, inputForm, loginUser, lower, natter, roomKey } from './chat-state.js';
import { currentConv, ensureUser, notice, selectConv, updateTarget } from './chat-conv.js';
import { connected, quit, request, sendMessage } from './chat-link.js';

// ---- constants ---------------------------------------------------------------

/** The `/history` count bounds (the server's maximum is 200). */
const MAX_HISTORY = 200;
/** User names (PROTOCOL.md §7.1); room names add one optional leading '#' (§7.3). */
const USER_RE = /^[A-Za-z0-9_-]{1,32}$/;
/** Typed lines remembered for Up/Down. */
const MAX_INPUT_HISTORY = 100;

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

/** Typed lines for Up/Down, oldest first; `historyPos` is the one shown (or length). */
const inputHistory = [];
let historyPos = 0;
let historyDraft = '';

// ---- typed lines -------------------------------------------------------------

inputForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!connected() && !natter.session) {
    notice('not connected; log in again', currentConv(), 'error');
    return;
  }
  const line = inputEl.value;
  rememberInput(line);
  inputEl.value = '';
  natter.refusedOffline = false;
  handleLine(line);
  // A command that needs the server, typed while reconnecting: keep it for a retry.
  if (natter.refusedOffline && inputEl.value === '') inputEl.value = line;
  natter.refusedOffline = false;
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
  const conv = natter.currentRoomKey && natter.convs.get(natter.currentRoomKey);
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
    const room = natter.currentRoomKey && natter.convs.get(natter.currentRoomKey);
    if (room) {
      selectConv(room.key);
      return notice(`back to #${room.name}`, room);
    }
    selectConv(null);
    return notice('back to no room; /join ROOM', natter.noneConv);
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
    conv = natter.convs.get(roomKey(who));
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

// ---- start -------------------------------------------------------------------

updateTarget();
loginUser.focus();
