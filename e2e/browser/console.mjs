// The operator console in a real browser, against terminal clients.
//
// An operator logs in (after a wrong password), sees a message sent by a terminal
// client appear live, filters and pauses the feed, sends a notice that reaches the
// terminal, mutes and unmutes that user, kicks them (their client is disconnected),
// and bans and unbans another (whose logins fail while banned). Run by crates/client/tests/browser_e2e.rs.

import {
  Terminal, check, env, launchBrowser, log, main, screenshot, waitText, waitUntil, waitVisible,
} from './lib.mjs';

const WEB_URL = env('WEB_URL');
const ADMIN_PASSWORD = env('ADMIN_PASSWORD');

/** Selector of feed events of `kind` (and `user`). */
const event = (kind, user) =>
  `#feed div.event[data-kind="${kind}"]${user ? `[data-user="${user}"]` : ''}`;

await main('console', async (t) => {
  const browser = await launchBrowser(t);
  const page = await browser.newPage('console');

  t.step('open /console: the login form');
  await page.goto(`${WEB_URL}/console`);
  await waitVisible(page, '#admin-login-form');
  check(await page.locator('#console').isHidden(), '#console is shown before logging in');
  await screenshot(page, 'console-login');

  t.step('a wrong operator password is refused');
  await page.fill('#admin-password', 'not the operator password');
  await page.click('#admin-login-submit');
  await waitText(page, '#admin-login-error', 'wrong password');
  check(await page.locator('#console').isHidden(), '#console is shown after a wrong password');

  t.step('the right password opens the console and its live monitor');
  await page.fill('#admin-password', ADMIN_PASSWORD);
  await page.click('#admin-login-submit');
  await waitVisible(page, '#console');
  check(await page.locator('#admin-login-form').isHidden(), 'the login form is still shown');
  await waitText(page, '#monitor-status', 'live');

  t.step('two terminal users log in; the console sees them');
  const carol = new Terminal(t, 'carol', { register: true });
  await carol.waitFor('[system] registered and logged in as carol', 'carol\'s login');
  const dave = new Terminal(t, 'dave', { register: true });
  await dave.waitFor('[system] registered and logged in as dave', 'dave\'s login');
  // A registration is also the login: the monitor reports it as `register`.
  await waitVisible(page, event('register', 'carol'));
  await waitVisible(page, event('register', 'dave'));

  t.step('a public message from the terminal appears live in the feed');
  const hello = 'morning all, the 2.3 deploy is done';
  carol.send(hello);
  await carol.waitFor(`#lobby <carol> ${hello}`, 'carol\'s own message');
  const row = await waitText(page, event('public', 'carol'), hello);
  check((await row.getAttribute('data-room')) === 'lobby',
    `the event's room is ${await row.getAttribute('data-room')}, not lobby`);
  await waitVisible(page, '#online li[data-user="carol"]');
  await waitVisible(page, '#online li[data-user="dave"]');
  await waitVisible(page, '#rooms-list li[data-room="lobby"]');
  await waitUntil(page, 'two sessions in #stat-sessions',
    () => Number(document.getElementById('stat-sessions').textContent) >= 2);

  t.step('more activity: a room, a private message, a failed login');
  const erin = new Terminal(t, 'erin', { register: true });
  await erin.waitFor('[system] registered and logged in as erin', 'erin\'s login');
  for (const who of [dave, erin]) {
    who.send('/join rust');
    await who.waitFor(/^\[joined\] #rust /, `${who.label}'s join of #rust`);
  }
  dave.send('anyone tried the new borrow checker diagnostics?');
  await erin.waitFor('#rust <dave> anyone tried the new borrow checker diagnostics?');
  erin.send('yes, the lifetime hints are much better now');
  await dave.waitFor('#rust <erin> yes, the lifetime hints are much better now');
  carol.send('/msg dave lunch at noon?');
  await dave.waitFor('*carol -> dave* lunch at noon?', 'carol\'s private message');
  const mallory = new Terminal(t, 'mallory', { label: 'mallory (no account)' });
  await mallory.waitFor((l) => l.startsWith('[error] ') && l.endsWith('(auth_failed)'),
    'the failed login');
  check((await mallory.exited()).code === 1, 'a failed login did not exit with 1');
  await waitText(page, event('private', 'carol'), 'lunch at noon?');
  await waitText(page, event('public', 'erin'), 'lifetime hints');
  await waitVisible(page, event('join', 'dave') + '[data-room="rust"]');
  await waitVisible(page, event('login_failed', 'mallory'));
  await waitVisible(page, '#online li[data-user="erin"]');
  await waitVisible(page, '#rooms-list li[data-room="rust"]');
  await screenshot(page, 'console');

  t.step('the user filter hides other users\' events');
  await page.fill('#filter-user', 'carol');
  await waitUntil(page, 'only carol\'s events visible', () => {
    const rows = [...document.querySelectorAll('#feed div.event')];
    const visible = rows.filter((r) => r.checkVisibility());
    return visible.length > 0 && visible.every((r) =>
      [r.dataset.user, r.dataset.to].some((n) => n && n.toLowerCase().includes('carol')));
  });
  check(await page.locator(event('public', 'dave')).first().isHidden(),
    'dave\'s public message is visible with the filter "carol"');
  check(await page.locator(event('public', 'carol')).first().isVisible(),
    'carol\'s public message is hidden with the filter "carol"');
  log('filter "carol": dave\'s events hidden, carol\'s shown');

  t.step('the kind filter combines with it; clearing the filters shows everything');
  await page.selectOption('#filter-kind', 'private');
  await waitUntil(page, 'only carol\'s private event visible', () => {
    const visible = [...document.querySelectorAll('#feed div.event')]
      .filter((r) => r.checkVisibility());
    return visible.length > 0 && visible.every((r) => r.dataset.kind === 'private');
  });
  await page.selectOption('#filter-kind', '');
  await page.fill('#filter-user', '');
  await waitVisible(page, event('public', 'dave'));
  await page.fill('#filter-room', 'rust');
  await waitUntil(page, 'only #rust events visible', () => {
    const visible = [...document.querySelectorAll('#feed div.event')]
      .filter((r) => r.checkVisibility());
    return visible.length > 0 && visible.every((r) => r.dataset.room === 'rust');
  });
  await page.fill('#filter-room', '');
  await waitVisible(page, event('public', 'carol'));

  t.step('pause: new events are counted, not shown, until resumed');
  await page.click('#pause');
  await waitVisible(page, '#paused-info');
  const paused = 'this arrives while the console is paused';
  carol.send(paused);
  await carol.waitFor(`#lobby <carol> ${paused}`, 'carol\'s own message');
  await waitUntil(page, '#paused-count above 0',
    () => Number(document.getElementById('paused-count').textContent) > 0);
  check(await page.locator(event('public', 'carol'), { hasText: paused }).count() === 0,
    'an event that arrived while paused is in the feed');
  await page.click('#pause');
  await waitText(page, event('public', 'carol'), paused);
  check(await page.locator('#paused-info').isHidden(), '#paused-info still shown after resuming');

  t.step('a notice reaches the terminal');
  const notice = 'maintenance tonight at 22:00 UTC, expect a short disconnect';
  await page.fill('#notice-text', notice);
  await page.click('#notice-send');
  await waitText(page, '#action-result', 'everyone');
  await carol.waitFor(`[system] [notice] ${notice}`, 'the notice');
  await dave.waitFor(`[system] [notice] ${notice}`, 'the notice');
  await waitText(page, event('notice'), notice);

  t.step('mute: the terminal user cannot send until unmuted');
  await page.fill('#action-user', 'carol');
  await page.fill('#mute-seconds', '600');
  await page.click('#mute');
  await waitText(page, '#action-result', 'muted carol for 600 s');
  await carol.waitFor('[system] an operator muted you for 600 s', 'the mute notice');
  carol.send('can anyone hear me?');
  await carol.waitFor((l) => l.startsWith('[error] ') && l.endsWith('(muted)'), 'the muted error');
  await waitVisible(page, event('mute', 'carol'));
  await page.click('#unmute');
  await waitText(page, '#action-result', 'unmuted carol');
  await carol.waitFor('[system] an operator lifted your mute', 'the unmute notice');
  carol.send('thanks, sorry about the noise');
  await waitText(page, event('public', 'carol'), 'sorry about the noise');

  t.step('kick: the terminal client is disconnected and exits');
  await page.fill('#action-user', 'carol');
  await page.fill('#action-reason', 'cool down');
  await page.click('#kick');
  await waitText(page, '#action-result', 'kicked carol');
  await carol.waitFor('[bye] kicked by an operator: cool down', 'the kick\'s bye');
  const kicked = await carol.exited();
  log(`carol's client exited with ${JSON.stringify(kicked)}`);
  check(kicked.code !== null, `carol's client was killed by ${kicked.signal}`);
  await waitVisible(page, event('kick', 'carol'));
  await page.locator('#online li[data-user="carol"]').waitFor({ state: 'detached' });

  t.step('ban: dave is disconnected and cannot log in again');
  await page.fill('#action-user', 'dave');
  await page.fill('#action-reason', '');
  await page.click('#ban');
  await waitText(page, '#action-result', 'banned dave');
  await dave.waitFor('[bye] banned by an operator', 'the ban\'s bye');
  await dave.exited();
  await waitVisible(page, event('ban', 'dave'));
  const banned = new Terminal(t, 'dave', { label: 'dave (banned)' });
  await banned.waitFor((l) => l.startsWith('[error] ') && l.endsWith('(banned)'),
    'the banned error');
  const status = await banned.exited();
  check(status.code === 1, `a banned login exited with ${JSON.stringify(status)}, not 1`);

  t.step('unban: dave logs in again');
  await page.click('#unban');
  await waitText(page, '#action-result', 'unbanned dave');
  const back = new Terminal(t, 'dave', { label: 'dave (unbanned)' });
  await back.waitFor('[system] logged in as dave', 'dave\'s login after the unban');
  await waitVisible(page, '#online li[data-user="dave"]');
  back.closeInput();
  await back.waitFor('[bye] quit', 'the bye after quitting');
  const quit = await back.exited();
  check(quit.code === 0, `dave's client exited with ${JSON.stringify(quit)}`);

  t.step('log out');
  await page.click('#logout');
  await waitVisible(page, '#admin-login-form');
  check(await page.locator('#console').isHidden(), '#console still shown after logging out');
  browser.checkNoPageErrors();
});
