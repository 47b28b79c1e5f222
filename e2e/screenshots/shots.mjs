// Takes the README's screenshots; run by take.sh, which starts the server and passes
// CHAT_ADDR, WEB_URL, KNOWN_SERVERS, NATTER_BIN, CHROMIUM, TMUX_SOCKET, WORK and OUT.
//
// alice runs the full-screen client in tmux, bob and dave are plain terminal clients,
// carol chats in the browser. They talk in #lobby, #rust and #release; dave mentions
// alice in #release and carol writes to her privately, so alice's buffer list shows
// unread counts and mention marks. The pane is captured with its colours
// (capture-pane -e), turned into HTML by aha and rendered by Chromium; then alice
// answers carol and bob writes in #lobby, which gives carol's page unread badges.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import {
  PASSWORD, T, Terminal, chatRegister, chatType, check, env, launchBrowser, log, main,
  waitText, waitVisible,
} from '../browser/lib.mjs';

const WORK = env('WORK');
const OUT = env('OUT');
const SOCKET = env('TMUX_SOCKET');

// ---- tmux ---------------------------------------------------------------------------

function tmux(...args) {
  const r = spawnSync('tmux', ['-f', '/dev/null', '-S', SOCKET, ...args], { encoding: 'utf8' });
  check(r.status === 0, `tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const screen = () => tmux('capture-pane', '-p', '-t', 'shots');
const keys = (...k) => tmux('send-keys', '-t', 'shots', ...k);
const lastLine = (s) => s.trimEnd().split('\n').pop() ?? '';

/** Types a line into alice's full-screen client. */
function aliceTypes(line) {
  log(`alice < ${line}`);
  keys('-l', line);
  keys('Enter');
}

/** Polls alice's screen until `pred` holds; returns it. */
async function waitScreen(what, pred, timeout = T) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const s = screen();
    if (pred(s)) return s;
    if (Date.now() > deadline) throw new Error(`no ${what} on alice's screen within ${timeout} ms:\n${s}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A line of the buffer list starting with `start` (e.g. "4 #release"). */
const bufferLine = (s, start) => s.split('\n').find((l) => l.startsWith(start)) ?? '';

// ---- ANSI -> HTML -> PNG --------------------------------------------------------------

// aha names the 16 ANSI colours after HTML's; these read better on a dark background.
const PALETTE = {
  black: '#1d1f21', red: '#cc6666', green: '#b5bd68', olive: '#f0c674', navy: '#81a2be',
  blue: '#81a2be', purple: '#b294bb', teal: '#8abeb7', gray: '#c5c8c6', dimgray: '#969896',
  lime: '#b9ca4a', yellow: '#e7c547', fuchsia: '#c397d8', aqua: '#70c0b1', white: '#eaeaea',
};

/** Captures alice's pane with its colours and saves it as a PNG of just the terminal. */
async function captureTerminal(browser, name) {
  const ansi = tmux('capture-pane', '-e', '-p', '-t', 'shots');
  const aha = spawnSync('aha', ['--no-header'], { input: ansi, encoding: 'utf8' });
  check(aha.status === 0, `aha: ${aha.stderr}`);
  const body = aha.stdout.replace(/(color|background-color):([a-z]+);/g,
    (m, prop, c) => (PALETTE[c] ? `${prop}:${PALETTE[c]};` : m));
  const html = `<!DOCTYPE html><html><head><meta charset="utf-8"><style>
html, body { margin: 0; background: #1d1f21; }
#term { display: inline-block; padding: 12px 14px; background: #1d1f21; color: #c5c8c6;
  font: 14px/1.3 'DejaVu Sans Mono', monospace; white-space: pre; }
</style></head><body><div id="term">${body.replace(/\n+$/, '')}</div></body></html>`;
  const file = path.join(WORK, `${name}.html`);
  writeFileSync(file, html);
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(`file://${file}`);
  const png = path.join(OUT, `${name}.png`);
  await page.locator('#term').screenshot({ path: png });
  await page.close();
  log(`screenshot: ${png}`);
}

// ---- the scene ------------------------------------------------------------------------

await main('screenshots', async (t) => {
  t.step('bob and dave register (plain terminal clients)');
  const bob = new Terminal(t, 'bob', { register: true });
  const dave = new Terminal(t, 'dave', { register: true });
  await bob.waitFor(/^\[joined\] #lobby /, 'bob\'s lobby join');
  await dave.waitFor(/^\[joined\] #lobby /, 'dave\'s lobby join');

  t.step('carol registers in the browser');
  const browser = await launchBrowser(t);
  const page = await browser.newPage('carol');
  await page.setViewportSize({ width: 1100, height: 640 });
  await page.goto(`${env('WEB_URL')}/chat`);
  await chatRegister(page, 'carol');

  t.step('alice starts the full-screen client in tmux (110x32)');
  const script = path.join(WORK, 'alice.sh');
  writeFileSync(script, [
    '#!/bin/sh',
    `export NATTER_PASSWORD='${PASSWORD}' XDG_CONFIG_HOME='${WORK}'`,
    `exec '${env('NATTER_BIN')}' --server ${env('CHAT_ADDR')} --user alice --known-servers '${env('KNOWN_SERVERS')}'`,
    '',
  ].join('\n'));
  tmux('new-session', '-d', '-s', 'shots', '-x', '110', '-y', '32', 'sh', script);
  await waitScreen('the full-screen layout', (s) => lastLine(s).startsWith('[#lobby] >'));

  t.step('#lobby');
  bob.send('morning all');
  await waitScreen('bob\'s line', (s) => s.includes('morning all'));
  dave.send('morning! the build farm is back up');
  await waitScreen('dave\'s line', (s) => s.includes('build farm'));
  await chatType(page, 'hi all, the release checklist is in #release');
  await waitScreen('carol\'s line', (s) => s.includes('release checklist'));
  aliceTypes('thanks carol, I will go through it after standup');
  await waitScreen('alice\'s line', (s) => s.includes('after standup'));

  t.step('everyone joins #release and #rust');
  bob.send('/join rust');
  await bob.waitFor(/^\[joined\] #rust /);
  dave.send('/join release');
  await dave.waitFor(/^\[joined\] #release /);
  dave.send('/join rust');
  await dave.waitFor(/^\[joined\] #rust /);
  await chatType(page, '/join release');
  await waitText(page, '#target', '#release');
  await chatType(page, '/join rust');
  await waitText(page, '#target', '#rust');

  t.step('#rust before alice comes: she gets it as history when she joins');
  dave.send('the flaky websocket test is fixed on main');
  await bob.waitFor('#rust <dave> the flaky websocket test is fixed on main');
  bob.send('which one? the reconnect one?');
  await dave.waitFor('#rust <bob> which one? the reconnect one?');
  dave.send('yes, it raced the server restart; it waits for the port now');
  await waitText(page, '#messages div.msg span.text', 'waits for the port now');
  await chatType(page, 'great, that one bit me twice this week');
  await bob.waitFor('#rust <carol> great, that one bit me twice this week');
  bob.send('I am bumping tokio on the side, the changelog looks harmless');
  await dave.waitFor(/#rust <bob> I am bumping tokio/);
  dave.send('go ahead, the benchmarks did not move here');
  await waitText(page, '#messages div.msg span.text', 'benchmarks did not move');

  aliceTypes('/join release');
  await waitScreen('#release', (s) => lastLine(s).startsWith('[#release] >'));
  aliceTypes('/join rust');
  await waitScreen('#rust', (s) => lastLine(s).startsWith('[#rust] >'));

  t.step('#rust, live');
  await chatType(page, 'anyone tried the new borrow checker diagnostics?');
  await waitScreen('carol in #rust', (s) => s.includes('borrow checker'));
  bob.send('yes, the lifetime suggestions are much better now');
  await waitScreen('bob in #rust', (s) => s.includes('lifetime suggestions'));
  aliceTypes('they caught a missing \'static bound in my PR yesterday');
  await waitScreen('alice in #rust', (s) => s.includes('missing \'static'));
  dave.send('the CI image is on the new toolchain since this morning');
  await waitScreen('dave in #rust', (s) => s.includes('new toolchain'));
  await chatType(page, 'nice, I will rebase the websocket branch then');
  await waitScreen('carol again', (s) => s.includes('rebase the websocket'));
  aliceTypes('I can take the docs part of it if you like');
  await waitScreen('alice again', (s) => s.includes('docs part'));
  await chatType(page, 'yes please, the README wants screenshots anyway');
  await waitScreen('carol once more', (s) => s.includes('wants screenshots'));
  bob.send('ping me when it is green and I will review it');
  await waitScreen('bob again', (s) => s.includes('I will review it'));

  t.step('elsewhere: #release mentions alice, #lobby goes on, carol writes privately');
  dave.send('/join release');
  await dave.waitFor(/^\[joined\] #release /);
  dave.send('0.4.0-rc1 is tagged, the changelog is in the release notes');
  dave.send('alice: can you sign off the changelog before 3?');
  await waitScreen('the mention mark on #release',
    (s) => /!\s*2|!2/.test(bufferLine(s, '3 #release')));
  bob.send('/join lobby');
  await bob.waitFor(/^\[joined\] #lobby /);
  bob.send('lunch at 12:30 anyone?');
  await waitScreen('the unread count on #lobby', (s) => /\b1\b/.test(bufferLine(s, '2 #lobby').slice(8)));
  await chatType(page, '/msg alice could you review the websocket branch after lunch?');
  await waitScreen('the private buffer with a mention mark',
    (s) => bufferLine(s, '5 @carol').includes('!'));

  t.step('the terminal screenshots');
  await captureTerminal(browser, 'terminal');
  tmux('resize-window', '-t', 'shots', '-x', '60', '-y', '24');
  await waitScreen('the narrow layout', (s) => s.split('\n').every((l) => l.length <= 60)
    && lastLine(s).startsWith('[#rust] >'));
  await new Promise((r) => setTimeout(r, 300));
  await captureTerminal(browser, 'terminal-narrow');
  tmux('resize-window', '-t', 'shots', '-x', '110', '-y', '32');

  t.step('alice answers carol; bob writes in #lobby: badges on carol\'s page');
  keys('M-5');
  await waitScreen('the private buffer', (s) => lastLine(s).startsWith('[@carol] >'));
  aliceTypes('sure, right after lunch');
  await waitVisible(page, '#conversations li[data-user="alice"] .unread');
  bob.send('carol: 12:30 it is, at the usual place');
  await waitVisible(page, '#conversations li[data-room="lobby"] .unread');
  await page.click('#conversations li[data-room="rust"]');
  await waitText(page, '#target', '#rust');
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const png = path.join(OUT, 'browser-chat.png');
  await page.screenshot({ path: png, animations: 'disabled' });
  log(`screenshot: ${png}`);
  browser.checkNoPageErrors();
});
