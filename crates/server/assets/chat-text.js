// natter browser chat (/chat): message text, links, mentions and notifications.
//
// Puts a message's text into the page with http(s) URLs as safe links (DOM calls only,
// never HTML), recognises mentions of the logged-in user, and shows desktop
// notifications.

'use strict';

import { el, natter } from './chat-state.js';
import { selectConv } from './chat-conv.js';

/** http(s) URLs in message text; anything else (javascript:, data:, ...) stays text. */
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/** Matches a whole-word mention of the logged-in user, or null. */
let mentionRe = null;

/**
 * Puts `text` into `container` as text nodes, with http(s) URLs as links. Built with
 * DOM calls only: nothing from the message is ever parsed as HTML, and a URL whose
 * scheme is not http or https (javascript:, data:, ...) stays plain text.
 */
export function renderText(container, text) {
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
export function mentionsMe(text) {
  return mentionRe !== null && mentionRe.test(String(text));
}

export function setMentionName(name) {
  // User names are letters, digits, '_' and '-'; a word boundary is anything else.
  const escaped = String(name).replace(/[^A-Za-z0-9_]/g, (ch) => '\\' + ch);
  mentionRe = name ? new RegExp(`(^|[^A-Za-z0-9_-])${escaped}(?![A-Za-z0-9_-])`, 'i') : null;
}

/** A desktop notification, when allowed and the tab is not being looked at. */
export function notify(conv, from, text) {
  if (!document.hidden || typeof Notification === 'undefined') return;
  if (Notification.permission !== 'granted') return;
  try {
    const title = conv.kind === 'room' ? `${from} in #${conv.name}` : `${from} (private)`;
    const n = new Notification(title, { body: String(text).slice(0, 300), tag: conv.key });
    n.addEventListener('click', () => {
      window.focus();
      if (natter.convs.get(conv.key) === conv) selectConv(conv.key);
      n.close();
    });
  } catch (err) {
    console.warn('natter: cannot show a notification:', err && err.message);
  }
}

/** Asks for the permission to notify; only from a user's action (a click, a key). */
export function askNotificationPermission() {
  if (typeof Notification === 'undefined' || Notification.permission !== 'default') return;
  try {
    const asked = Notification.requestPermission();
    if (asked && typeof asked.catch === 'function') asked.catch(() => {});
  } catch {
    // Old browsers without the promise form: no notifications then.
  }
}
