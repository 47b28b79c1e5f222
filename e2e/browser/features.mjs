// The browser chat's mentions, links and input history.
//
// bob (terminal) writes to alice (browser): lines naming her as a whole word are
// highlighted, give their conversation a mention badge and, while the tab is hidden
// and notifications are allowed, a desktop notification; lines that merely contain
// the name are not. http(s) URLs become safe links (new tab, noopener noreferrer);
// javascript: and data: URLs and HTML stay text. Up and Down walk through the lines
// alice typed. Run by crates/client/tests/browser_e2e.rs.

import {
  Terminal, chatRegister, chatType, check, env, launchBrowser, main, waitText, waitUntil,
  waitVisible,
} from './lib.mjs';

const WEB_URL = env('WEB_URL');

/** The line of the current conversation whose text is exactly `text`, as data. */
const lineOf = (page, text) => page.evaluate((t) => {
  const line = Array.from(document.querySelectorAll('#messages div.msg'))
    .find((e) => e.querySelector('span.text').textContent === t);
  if (!line) return null;
  const span = line.querySelector('span.text');
  return {
    mention: line.classList.contains('mention'),
    elements: Array.from(span.querySelectorAll('*')).map((e) => e.tagName.toLowerCase()),
    links: Array.from(span.querySelectorAll('a')).map((a) => ({
      href: a.getAttribute('href'), text: a.textContent, target: a.target, rel: a.rel,
    })),
  };
}, text);

await main('features', async (t) => {
  t.step('bob (terminal) and alice (browser) register');
  const bob = new Terminal(t, 'bob', { register: true });
  await bob.waitFor('[system] registered and logged in as bob', 'bob\'s login');
  const browser = await launchBrowser(t);
  const page = await browser.newPage('chat');
  // Notifications as a test double that records them, with the permission granted, and
  // a switch for "the tab is hidden" (headless tabs are always visible).
  await page.addInitScript(() => {
    window.__notes = [];
    window.__asked = 0;
    class RecordedNotification {
      static permission = 'default';

      static requestPermission() {
        window.__asked += 1;
        RecordedNotification.permission = 'granted';
        return Promise.resolve('granted');
      }

      constructor(title, options) {
        window.__notes.push({ title, body: options && options.body });
      }

      addEventListener() {}

      close() {}
    }
    window.Notification = RecordedNotification;
    Object.defineProperty(Document.prototype, 'hidden', {
      configurable: true,
      get() { return window.__hidden === true; },
    });
  });
  await page.goto(`${WEB_URL}/chat`);
  check(await page.evaluate(() => window.__asked) === 0, 'notification permission asked on load');
  await chatRegister(page, 'alice');
  check(await page.evaluate(() => window.__asked) === 1,
    'notification permission not asked when logging in');
  await bob.waitFor('[join] #lobby alice', 'alice\'s join of #lobby');

  t.step('mentions: whole word, any case; not inside other words or from alice herself');
  for (const text of ['hey Alice, look at this', 'ALICE!', 'malice and alicex and alice_b are not her']) {
    bob.send(text);
    await waitText(page, '#messages div.msg[data-from="bob"] span.text', text);
  }
  check((await lineOf(page, 'hey Alice, look at this')).mention, 'a mention is not highlighted');
  check((await lineOf(page, 'ALICE!')).mention, 'an upper-case mention is not highlighted');
  check(!(await lineOf(page, 'malice and alicex and alice_b are not her')).mention,
    'a line with the name inside other words is highlighted');
  await chatType(page, 'I am alice');
  await waitText(page, '#messages div.msg[data-from="alice"] span.text', 'I am alice');
  check(!(await lineOf(page, 'I am alice')).mention, 'her own line is highlighted');
  check(await page.evaluate(() => window.__notes.length) === 0, 'notified while the tab is visible');

  t.step('a mention in another conversation: mention badge; hidden tab: a notification');
  await chatType(page, '/join rust');
  await waitText(page, '#target', '#rust');
  bob.send('nobody named here');
  await waitVisible(page, '#conversations li[data-room="lobby"] .unread');
  check(await page.locator('#conversations li[data-room="lobby"] .unread.mention').count() === 0,
    'a mention badge without a mention');
  await page.evaluate(() => { window.__hidden = true; });
  bob.send('alice: the build is green');
  await waitVisible(page, '#conversations li[data-room="lobby"] .unread.mention');
  await waitUntil(page, 'a notification', () => window.__notes.length === 1);
  const note = await page.evaluate(() => window.__notes[0]);
  check(note.title === 'bob in #lobby' && note.body === 'alice: the build is green',
    `the notification is ${JSON.stringify(note)}`);
  bob.send('no mention, no notification');
  await waitText(page, '#conversations li[data-room="lobby"] .unread', '3');
  check(await page.evaluate(() => window.__notes.length) === 1, 'notified without a mention');
  await page.evaluate(() => { window.__hidden = false; });
  await page.click('#conversations li[data-room="lobby"]');
  check(await page.locator('#conversations li[data-room="lobby"] .unread').count() === 0,
    'the badge stays after opening the conversation');
  check((await lineOf(page, 'alice: the build is green')).mention, 'the mention is not highlighted');

  t.step('links: http(s) as safe anchors, other schemes and HTML as text');
  const linked = 'docs: https://example.org/a/b?q=1&r=2#top, mirror (http://mirror.example.net/x).';
  bob.send(linked);
  await waitText(page, '#messages div.msg span.text', 'mirror.example.net');
  const l1 = await lineOf(page, linked);
  check(l1 !== null, 'the linked line is not shown verbatim');
  check(JSON.stringify(l1.links) === JSON.stringify([
    { href: 'https://example.org/a/b?q=1&r=2#top', text: 'https://example.org/a/b?q=1&r=2#top', target: '_blank', rel: 'noopener noreferrer' },
    { href: 'http://mirror.example.net/x', text: 'http://mirror.example.net/x', target: '_blank', rel: 'noopener noreferrer' },
  ]), `the links are ${JSON.stringify(l1.links)}`);
  const hostile = 'javascript:alert(1) data:text/html,<script>alert(2)</script> <img src=x onerror=alert(3)> <a href="javascript:alert(4)">x</a>';
  bob.send(hostile);
  await waitText(page, '#messages div.msg span.text', 'onerror');
  const l2 = await lineOf(page, hostile);
  check(l2 !== null, 'the hostile line is not shown verbatim');
  check(l2.elements.length === 0, `the hostile line made elements: ${l2.elements}`);

  t.step('input history: Up and Down walk through what was typed, the draft comes back');
  await chatType(page, 'first line');
  await chatType(page, 'second line');
  await page.fill('#input', 'a draft');
  // Everything typed on this page, commands too, oldest first: 'I am alice', '/join rust',
  // 'first line', 'second line'.
  const keys = [['ArrowUp', 'second line'], ['ArrowUp', 'first line'], ['ArrowUp', '/join rust'],
    ['ArrowUp', 'I am alice'], ['ArrowUp', 'I am alice'], ['ArrowDown', '/join rust'],
    ['ArrowDown', 'first line'], ['ArrowDown', 'second line'], ['ArrowDown', 'a draft'],
    ['ArrowDown', 'a draft']];
  for (const [key, expected] of keys) {
    await page.press('#input', key);
    const value = await page.inputValue('#input');
    check(value === expected, `after ${key} the input is ${JSON.stringify(value)}, not ${JSON.stringify(expected)}`);
  }
  await page.press('#input', 'ArrowUp');
  await page.press('#input', 'Enter');
  await bob.waitFor('#lobby <alice> second line', 'the line sent again from the history');
  browser.checkNoPageErrors();
});
