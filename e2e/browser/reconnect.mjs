// The browser chat survives a server restart.
//
// alice (browser) and bob (terminal) talk in #lobby and #rust. The server stops: the
// page says it is reconnecting, keeps a half-typed line, and holds a line sent while
// away as pending. The server comes back with its chat port only, bob logs in again
// and writes in #lobby, #rust and privately to alice; then the web port is back too.
// The page logs in again by itself (no login form), is in #rust again, shows each
// missed message once, sends the pending line once, and keeps the half-typed text.
// Finally an operator bans alice: only then does the login form come back, without
// the old chat under it.
// Run by crates/client/tests/browser_e2e.rs.

import {
  Terminal, chatRegister, chatType, check, env, launchBrowser, main, serverControl, waitText,
  waitUntil, waitVisible,
} from './lib.mjs';

const WEB_URL = env('WEB_URL');
/** A line whose connection drops right after it is sent, before its ok. */
const CUT = 'sent just before the connection dropped';

/** How many shown messages in the current conversation have exactly this text. */
const countText = (page, text) => page.evaluate((t) => Array.from(
  document.querySelectorAll('#messages div.msg:not(.pending) span.text'),
).filter((e) => e.textContent === t).length, text);

await main('reconnect', async (t) => {
  t.step('bob (terminal) and alice (browser) register and meet in #rust');
  const bob = new Terminal(t, 'bob', { register: true });
  await bob.waitFor('[system] registered and logged in as bob', 'bob\'s login');
  const browser = await launchBrowser(t);
  const page = await browser.newPage('chat');
  // Records what the page sends, and drops the connection right after sending the
  // line CUT: its ok can never arrive, so the page must send it again.
  await page.addInitScript((cut) => {
    const send = WebSocket.prototype.send;
    window.__sent = [];
    WebSocket.prototype.send = function sendAndMaybeCut(data) {
      send.call(this, data);
      window.__sent.push(String(data));
      if (String(data).includes(`"text":"${cut}"`) && !window.__cut) {
        window.__cut = true;
        this.close();
      }
    };
  }, CUT);
  await page.goto(`${WEB_URL}/chat`);
  await chatRegister(page, 'alice');
  bob.send('/join rust');
  await bob.waitFor(/^\[joined\] #rust /, 'bob\'s join of #rust');
  await chatType(page, '/join rust');
  await waitText(page, '#target', '#rust');
  await bob.waitFor('[join] #rust alice', 'alice\'s join of #rust');
  bob.send('before the restart');
  await waitText(page, '#messages div.msg[data-from="bob"] span.text', 'before the restart');

  t.step('the server stops: the page is reconnecting, the chat stays');
  await serverControl('stop');
  await waitText(page, '#status', 'reconnecting in');
  check(await page.locator('#login-form').isHidden(), 'the login form came up on a disconnect');
  check(await page.locator('#chat').isVisible(), 'the chat was hidden on a disconnect');
  await waitText(page, '#messages div.notice.error', 'disconnected');
  bob.kill();

  t.step('a line sent while away waits as pending; a half-typed one stays in the input');
  const queued = 'typed while the server was down';
  await chatType(page, queued);
  await waitText(page, '#messages div.msg.pending', queued);
  const half = 'half typed, not sent ye';
  await page.fill('#input', half);

  t.step('the chat port comes back first: bob writes while the page cannot reconnect');
  await serverControl('start-chat');
  const bob2 = new Terminal(t, 'bob', { label: 'bob2' });
  await bob2.waitFor('[system] logged in as bob', 'bob\'s second login');
  bob2.send('missed in the lobby');
  await bob2.waitFor('#lobby <bob> missed in the lobby');
  bob2.send('/join rust');
  await bob2.waitFor(/^\[joined\] #rust /, 'bob\'s second join of #rust');
  for (const text of ['missed in rust, one', 'missed in rust, two']) {
    bob2.send(text);
    await bob2.waitFor(`#rust <bob> ${text}`);
  }
  bob2.send('/msg alice missed privately');
  await bob2.waitFor('*bob -> alice* missed privately');
  // Its attempts fail on the closed web port, each after a longer wait (1 s, 2 s, ...).
  await waitUntil(page, 'two failed reconnection attempts',
    () => Number(document.getElementById('status').dataset.retry) >= 3);
  await waitText(page, '#status', 'reconnecting in');
  check(await page.locator('#login-form').isHidden(), 'the login form came up while reconnecting');

  t.step('the web port comes back: the page logs in again by itself');
  await serverControl('stop');
  bob2.kill();
  await serverControl('start');
  await waitText(page, '#status', 'reconnected', 30_000);
  check(await page.locator('#login-form').isHidden(), 'the login form came up after reconnecting');
  const input = await page.inputValue('#input');
  check(input === half, `the half-typed line is ${JSON.stringify(input)}, not ${JSON.stringify(half)}`);
  await waitText(page, '#target', '#rust');

  t.step('missed messages appear once, the pending line is sent once');
  await waitText(page, '#messages div.msg[data-from="bob"] span.text', 'missed in rust, two');
  await waitText(page, '#messages div.msg[data-from="alice"][data-msg-id] span.text', queued);
  await waitUntil(page, 'the pending line to go',
    () => document.querySelectorAll('#messages div.msg.pending').length === 0);
  for (const text of ['before the restart', 'missed in rust, one', 'missed in rust, two', queued]) {
    const n = await countText(page, text);
    check(n === 1, `#rust shows ${JSON.stringify(text)} ${n} times`);
  }
  // The missed lines are in msg_id order: one before two, both after the first line.
  const order = await page.evaluate(() => Array.from(
    document.querySelectorAll('#messages div.msg[data-msg-id]'),
  ).map((e) => Number(e.dataset.msgId)));
  check(order.every((id, i) => i === 0 || order[i - 1] < id), `#rust out of order: ${order}`);
  // What was missed elsewhere is unread there.
  await waitVisible(page, '#conversations li[data-room="lobby"] .unread');
  await waitVisible(page, '#conversations li[data-user="bob"] .unread');
  await page.click('#conversations li[data-room="lobby"]');
  await waitText(page, '#messages div.msg span.text', 'missed in the lobby');
  check(await countText(page, 'missed in the lobby') === 1, 'the lobby shows the missed line twice');
  await page.click('#conversations li[data-user="bob"]');
  await waitText(page, '#messages div.msg span.text', 'missed privately');
  check(await countText(page, 'missed privately') === 1, 'the private line shows twice');

  t.step('alice is in #rust again: she gets bob\'s new messages there and he gets hers');
  const bob3 = new Terminal(t, 'bob', { label: 'bob3' });
  await bob3.waitFor('[system] logged in as bob', 'bob\'s third login');
  bob3.send('/join rust');
  await bob3.waitFor(/^\[joined\] #rust .*alice/, 'bob\'s join of #rust, with alice in it');
  await page.click('#conversations li[data-room="rust"]');
  bob3.send('welcome back');
  await waitText(page, '#messages div.msg[data-from="bob"] span.text', 'welcome back');
  await page.fill('#input', 'thanks!');
  await page.press('#input', 'Enter');
  await bob3.waitFor('#rust <alice> thanks!');

  t.step('a message whose ok was lost is sent again with its client_id, and stored once');
  const reconnects = () => document.querySelectorAll('#messages div.notice.system').length;
  const before = await page.evaluate(reconnects);
  await page.fill('#input', CUT);
  await page.press('#input', 'Enter');
  await waitUntil(page, 'a second reconnect',
    (n) => document.querySelectorAll('#messages div.notice.system').length > n, before, 30_000);
  await waitText(page, '#status', 'reconnected');
  await waitText(page, '#messages div.msg[data-from="alice"][data-msg-id] span.text', CUT);
  await chatType(page, 'after the drop');
  await bob3.waitFor('#rust <alice> after the drop');
  const copies = bob3.lines.filter((l) => l === `#rust <alice> ${CUT}`).length;
  check(copies === 1, `bob got ${copies} copies of the line whose ok was lost`);
  check(await countText(page, CUT) === 1, 'alice sees the line whose ok was lost twice');
  const sent = await page.evaluate(() => window.__sent.map((d) => JSON.parse(d))
    .filter((f) => f.type === 'public' || f.type === 'private'));
  const tries = sent.filter((f) => f.text === CUT);
  check(tries.length === 2 && tries[0].client_id === tries[1].client_id,
    `the line was sent as ${JSON.stringify(tries)}`);
  const ids = sent.map((f) => f.client_id);
  check(ids.every((id) => /^[0-9a-f]{32}$/.test(id)), `client_ids: ${ids}`);
  check(new Set(ids).size === ids.length - 1, `client_ids not fresh per message: ${ids}`);

  t.step('a ban: the remembered credentials stop working, the login form comes back');
  const login = await fetch(`${WEB_URL}/api/admin/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ password: env('ADMIN_PASSWORD') }),
  });
  check(login.ok, `operator login: ${login.status}`);
  const { csrf } = await login.json();
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const ban = await fetch(`${WEB_URL}/api/admin/ban`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Cookie: cookie },
    body: JSON.stringify({ user: 'alice', reason: 'testing' }),
  });
  check(ban.ok, `ban: ${ban.status} ${await ban.text()}`);
  await waitVisible(page, '#login-form', 30_000);
  await waitText(page, '#login-error', 'banned');
  check(await page.locator('#chat').isHidden(), 'the old chat is still shown under the login form');
  check(await page.inputValue('#login-user') === 'alice', 'the user name is not filled in');
  browser.checkNoPageErrors();
});
