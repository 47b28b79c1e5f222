// The browser chat page in a real browser, against a terminal client.
//
// A browser user (registering on the page) and a terminal user exchange public and
// private messages both ways, and the browser joins a room the terminal user is in.
// Run by crates/client/tests/browser_e2e.rs.

import {
  PASSWORD, Terminal, check, env, launchBrowser, main, screenshot, waitText, waitUntil, waitVisible,
} from './lib.mjs';

const WEB_URL = env('WEB_URL');

/** Types a line into the chat page's input and sends it with the Send button. */
async function type(page, line) {
  await page.fill('#input', line);
  await page.click('#send');
  await waitUntil(page, 'the input to be cleared after sending',
    () => document.getElementById('input').value === '');
}

/** Selector of a shown message from `from` with text `text` in the current conversation. */
const msg = (attrs) => `#messages div.msg${attrs}`;

await main('chat', async (t) => {
  t.step('the terminal user bob registers');
  const bob = new Terminal(t, 'bob', { register: true });
  await bob.waitFor('[system] registered and logged in as bob', 'bob\'s login');
  await bob.waitFor(/^\[joined\] #lobby /, 'bob\'s lobby join');

  t.step('the browser user alice registers on /chat');
  const browser = await launchBrowser(t);
  const page = await browser.newPage('chat');
  await page.goto(`${WEB_URL}/chat`);
  await waitVisible(page, '#login-form');
  check(await page.locator('#chat').isHidden(), '#chat is shown before logging in');
  await page.fill('#login-user', 'alice');
  await page.fill('#login-password', PASSWORD);
  await page.check('#login-register');
  await screenshot(page, 'chat-login');
  await page.click('#login-submit');
  await waitVisible(page, '#chat');
  await waitText(page, '#status', 'Logged in as alice');
  check(await page.locator('#login-form').isHidden(), 'the login form is still shown');
  await waitVisible(page, '#conversations li[data-room="lobby"]');
  await waitText(page, '#target', '#lobby');
  await waitText(page, '#messages div.notice', 'registered and logged in as alice');
  await bob.waitFor('[join] #lobby alice', 'alice\'s join of #lobby');

  t.step('browser -> terminal, public');
  const fromBrowser = 'hello from the browser!';
  await type(page, fromBrowser);
  await bob.waitFor(`#lobby <alice> ${fromBrowser}`, 'alice\'s public message');
  await waitText(page, msg('[data-from="alice"][data-room="lobby"] span.text'), fromBrowser);

  t.step('terminal -> browser, public');
  const fromTerminal = 'hi alice, bob here, on the terminal';
  bob.send(fromTerminal);
  await waitText(page, msg('[data-from="bob"][data-room="lobby"] span.text'), fromTerminal);

  t.step('browser -> terminal, private (/msg bob TEXT)');
  const psst = 'psst: the release notes are in the wiki';
  await type(page, `/msg bob ${psst}`);
  await bob.waitFor(`*alice -> bob* ${psst}`, 'alice\'s private message');
  await waitVisible(page, '#conversations li[data-user="bob"]');

  t.step('terminal -> browser, private: it lands in the conversation with bob');
  const reply = 'thanks, reading them now';
  bob.send(`/msg alice ${reply}`);
  await bob.waitFor(`*bob -> alice* ${reply}`, 'bob\'s own private message');
  // Not the conversation on screen: it is counted as unread.
  await waitVisible(page, '#conversations li[data-user="bob"] .unread');
  await page.click('#conversations li[data-user="bob"]');
  await waitText(page, '#target', '@bob');
  await waitText(page, msg('[data-from="bob"][data-with="bob"] span.text'), reply);
  await waitText(page, msg('[data-from="alice"][data-with="bob"] span.text'), psst);
  check(await page.locator('#conversations li[data-user="bob"] .unread').count() === 0,
    'the unread badge stays after opening the conversation');

  t.step('focus mode: plain lines go privately to bob');
  await type(page, '/msg bob');
  const focused = 'the part about the web console is new';
  await type(page, focused);
  await bob.waitFor(`*alice -> bob* ${focused}`, 'alice\'s focused private message');
  await waitText(page, msg('[data-from="alice"][data-with="bob"] span.text'), focused);
  await type(page, '/msg public');
  await waitText(page, '#target', '#lobby');

  t.step('both join #rust; room messages go both ways');
  bob.send('/join rust');
  await bob.waitFor(/^\[joined\] #rust /, 'bob\'s join of #rust');
  await type(page, '/join rust');
  await waitVisible(page, '#conversations li[data-room="rust"]');
  await waitText(page, '#target', '#rust');
  await bob.waitFor('[join] #rust alice', 'alice\'s join of #rust');
  await type(page, 'anyone tried the new borrow checker diagnostics?');
  await bob.waitFor('#rust <alice> anyone tried the new borrow checker diagnostics?');
  bob.send('yes, the suggestions for lifetimes are much better now');
  await waitText(page, msg('[data-from="bob"][data-room="rust"] span.text'),
    'the suggestions for lifetimes are much better now');
  await type(page, 'nice, I will update the CI image this afternoon');
  await bob.waitFor('#rust <alice> nice, I will update the CI image this afternoon');
  bob.send('ping me when it is green and I will cut the release');
  await waitText(page, msg('[data-from="bob"][data-room="rust"] span.text'),
    'I will cut the release');
  bob.send('/msg alice can you review my PR when you have a minute?');
  await waitVisible(page, '#conversations li[data-user="bob"] .unread');
  // The lobby got nothing new while alice was in #rust: no badge there.
  check(await page.locator('#conversations li[data-room="lobby"] .unread').count() === 0,
    '#lobby has an unread badge without new messages');
  await screenshot(page, 'chat');

  t.step('the private conversation, for the documentation');
  await page.click('#conversations li[data-user="bob"]');
  await waitText(page, msg('[data-from="bob"][data-with="bob"] span.text'), 'review my PR');
  await type(page, 'sure, after lunch');
  await bob.waitFor('*alice -> bob* sure, after lunch');
  await screenshot(page, 'chat-private');

  t.step('bob leaves; alice sees him go');
  bob.closeInput();
  await bob.waitFor('[bye] quit', 'bob\'s bye');
  const status = await bob.exited();
  check(status.code === 0, `bob's client exited with ${JSON.stringify(status)}`);
  await page.click('#conversations li[data-room="rust"]');
  await waitText(page, '#messages div.notice', 'bob left');
  browser.checkNoPageErrors();
});
