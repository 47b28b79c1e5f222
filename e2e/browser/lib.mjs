// Shared helpers for natter's real-browser end-to-end scripts.
//
// The scripts are plain Node ES modules driven by playwright-core against the Debian
// `chromium` package; crates/client/tests/browser_e2e.rs starts a real natter server
// and runs them with these environment variables:
//
//   WEB_URL         http://127.0.0.1:PORT of the server's web interface
//   CHAT_ADDR       127.0.0.1:PORT of its chat (TLS) port
//   CONTROL_ADDR    127.0.0.1:PORT where the harness takes `stop`, `start` and
//                   `start-chat` to restart the server (see serverControl below)
//   KNOWN_SERVERS   a known-servers file pinning the chat port's certificate
//   NATTER_BIN      the terminal client binary
//   ADMIN_PASSWORD  the operator password
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   NATTER_SCREENSHOTS  optional: a directory to write the documentation screenshots to
//
// Every wait has a deadline; nothing sleeps for a fixed time. A script prints what it
// does step by step, and on failure the reason plus what the terminals and pages showed.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import { chromium } from 'playwright-core';

/** Default deadline of one wait, in milliseconds. */
export const T = 15_000;
/** Deadline of a whole script; the Rust harness allows a little more. */
const SCRIPT_LIMIT = 100_000;
/** Password of every chat account the scripts create. */
export const PASSWORD = 'correct horse battery staple';

const started = Date.now();

/** Prints a progress line with the time since the start. */
export function log(...args) {
  const s = ((Date.now() - started) / 1000).toFixed(2).padStart(6);
  console.log(`[${s}s]`, ...args);
}

/** A required environment variable. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (these scripts are run by crates/client/tests/browser_e2e.rs)`);
  }
  return value;
}

/** Throws `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Runs a script body: `body(t)` gets a test context with `t.defer(fn)` (cleanups, run
 * in reverse order however the body ends), `t.step(name)` (progress) and
 * `t.watch(label, page)` (pages whose text is shown on failure). Exits the process
 * with 0 on success and 1 on failure or when SCRIPT_LIMIT passes.
 */
export async function main(name, body) {
  const cleanups = [];
  const pages = [];
  let current = 'start';
  const t = {
    defer: (fn) => cleanups.push(fn),
    step: (what) => {
      current = what;
      log(`-- ${what}`);
    },
    watch: (label, page) => pages.push({ label, page }),
  };
  const cleanup = async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop();
      try {
        await fn();
      } catch (e) {
        log(`cleanup failed: ${e.message}`);
      }
    }
  };
  const watchdog = setTimeout(async () => {
    console.error(`FAIL ${name}: still running after ${SCRIPT_LIMIT} ms, in step "${current}"`);
    await dumpPages(pages);
    await cleanup();
    process.exit(1);
  }, SCRIPT_LIMIT);

  let failed = false;
  try {
    await body(t);
  } catch (e) {
    failed = true;
    console.error(`FAIL ${name}: in step "${current}": ${e && e.stack ? e.stack : e}`);
    await dumpPages(pages);
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
  if (!failed) log(`PASS ${name}`);
  process.exit(failed ? 1 : 0);
}

/** Prints the visible text of each page, for failure reports. */
async function dumpPages(pages) {
  for (const { label, page } of pages) {
    try {
      const text = await page.evaluate(() => document.body.innerText);
      console.error(`--- ${label} page (${page.url()}) shows:\n${text.slice(0, 4000)}\n---`);
    } catch (e) {
      console.error(`--- ${label} page: cannot read it: ${e.message}`);
    }
  }
}

// ---- the browser ------------------------------------------------------------------

/**
 * Launches Chromium with a fresh temporary profile and a 1280x800 viewport; the
 * cleanup (closing it and deleting the profile) is registered on `t`. Uncaught page
 * errors and the pages' own console warnings (`natter: ...`) are recorded in
 * `browser.pageErrors` (scripts fail on them at the end).
 */
export async function launchBrowser(t) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'natter-e2e-chromium-'));
  t.defer(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
  });
  t.defer(() => context.close());
  context.setDefaultTimeout(T);
  const browser = {
    context,
    pageErrors: [],
    /** A new tab, with its console errors logged and its page errors recorded. */
    async newPage(label) {
      const blank = context.pages().find((p) => p.url() === 'about:blank' && !p.__natterUsed);
      const page = blank ?? (await context.newPage());
      page.__natterUsed = true;
      page.on('pageerror', (e) => {
        log(`${label}: page error: ${e.message}`);
        browser.pageErrors.push(`${label}: ${e.message}`);
      });
      page.on('console', (m) => {
        // The 401s of the session check and of a wrong password are expected.
        if (/status of 401\b/.test(m.text())) return;
        if (m.type() === 'error' || m.type() === 'warning') {
          log(`${label}: browser console ${m.type()}: ${m.text()}`);
          // The pages' own warnings ("natter: ...") mean something unexpected happened.
          if (m.text().startsWith('natter:')) browser.pageErrors.push(`${label}: ${m.text()}`);
        }
      });
      t.watch(label, page);
      return page;
    },
    /** Fails if any page threw an uncaught error or warned about something unexpected. */
    checkNoPageErrors() {
      check(browser.pageErrors.length === 0,
        `uncaught errors in the pages: ${browser.pageErrors.join('; ')}`);
    },
  };
  return browser;
}

/** Waits until the element `selector` is visible and its text contains `text`. */
export async function waitText(page, selector, text, timeout = T) {
  const locator = page.locator(selector, { hasText: text }).first();
  try {
    await locator.waitFor({ state: 'visible', timeout });
  } catch {
    const now = await page.locator(selector).allInnerTexts().catch(() => []);
    throw new Error(`no visible ${selector} containing ${JSON.stringify(String(text))} ` +
      `within ${timeout} ms; now: ${JSON.stringify(now.slice(0, 20))}`);
  }
  return locator;
}

/** Waits until `selector` is visible. */
export async function waitVisible(page, selector, timeout = T) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout });
  } catch {
    throw new Error(`${selector} not visible within ${timeout} ms`);
  }
}

/**
 * Waits until `fn(arg)` (run in the page) returns a truthy value; `what` names the
 * condition in the failure message.
 */
export async function waitUntil(page, what, fn, arg, timeout = T) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

/** Saves a screenshot as NAME.png into $NATTER_SCREENSHOTS, when that is set. */
export async function screenshot(page, name) {
  const dir = process.env.NATTER_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  // No blinking caret or hover effects in the documentation pictures.
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.screenshot({ path: file, animations: 'disabled' });
  log(`screenshot: ${file}`);
}

// ---- the server ---------------------------------------------------------------------

/**
 * Stops and starts the server through the harness's control socket (CONTROL_ADDR):
 * `await control('stop')`, `'start'` (chat and web again, same ports and data) or
 * `'start-chat'` (the chat port only). Resolves when the harness has done it.
 */
export async function serverControl(command, timeout = 40_000) {
  const [host, port] = env('CONTROL_ADDR').split(':');
  log(`server: ${command}`);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server control: no answer to ${command} within ${timeout} ms`));
    }, timeout);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (!answer.includes('\n')) return;
      clearTimeout(timer);
      socket.end();
      const line = answer.split('\n')[0];
      if (line === `ok ${command}`) {
        log(`server: ${command} done`);
        resolve();
      } else {
        reject(new Error(`server control: ${command}: ${line}`));
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`server control: ${e.message}`));
    });
  });
}

/** Types a line into the chat page's input and sends it with Enter. */
export async function chatType(page, line) {
  await page.fill('#input', line);
  await page.press('#input', 'Enter');
  await waitUntil(page, 'the input to be cleared after sending',
    () => document.getElementById('input').value === '');
}

/** Registers `user` on the chat page (already open) and waits for the chat. */
export async function chatRegister(page, user) {
  await waitVisible(page, '#login-form');
  await page.fill('#login-user', user);
  await page.fill('#login-password', PASSWORD);
  await page.check('#login-register');
  await page.click('#login-submit');
  await waitVisible(page, '#chat');
  await waitText(page, '#status', `Logged in as ${user}`);
}

// ---- terminal clients ---------------------------------------------------------------

/**
 * A terminal client (`natter --plain`) connected to CHAT_ADDR over TLS, trusting
 * only the pinned certificate in KNOWN_SERVERS. Its stdout is read line by line.
 */
export class Terminal {
  /**
   * Starts the client for `user`; `register` creates the account. The process is
   * killed by `t`'s cleanup if it is still running.
   */
  constructor(t, user, { register = false, label = user } = {}) {
    this.label = label;
    this.lines = [];
    this.consumed = new Set();
    this.stderr = '';
    this.waiters = new Set();
    this.ended = false;
    this.status = null;
    this.home = mkdtempSync(path.join(tmpdir(), `natter-e2e-${user}-`));
    const args = [
      '--server', env('CHAT_ADDR'),
      '--user', user,
      '--plain',
      '--known-servers', env('KNOWN_SERVERS'),
      '--strict-trust',
    ];
    if (register) args.push('--register');
    const childEnv = { ...process.env, NATTER_PASSWORD: PASSWORD, XDG_CONFIG_HOME: this.home };
    for (const k of ['NATTER_SERVER', 'NATTER_USER', 'NATTER_PLAINTEXT', 'NATTER_CA_CERT']) {
      delete childEnv[k];
    }
    this.child = spawn(env('NATTER_BIN'), args, { env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    log(`${label}: started natter --user ${user}${register ? ' --register' : ''} (pid ${this.child.pid})`);
    this.child.stdin.on('error', () => {}); // writing to a client that just exited
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    const exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal }));
      this.child.on('error', (e) => {
        this.stderr += `\n(cannot run the client: ${e.message})`;
        resolve({ code: null, signal: null, error: e });
      });
    });
    const rl = readline.createInterface({ input: this.child.stdout, crlfDelay: Infinity });
    rl.on('line', (line) => {
      this.lines.push(line);
      log(`${label} | ${line}`);
      for (const w of this.waiters) w.check();
    });
    const closed = new Promise((resolve) => rl.on('close', resolve));
    this.done = Promise.all([exited, closed]).then(([status]) => {
      this.ended = true;
      this.status = status;
      for (const w of this.waiters) w.check();
      return status;
    });
    t.defer(() => this.kill());
    t.defer(() => rmSync(this.home, { recursive: true, force: true }));
  }

  /** What the client printed, for failure messages. */
  describe() {
    return `${this.label} printed ${JSON.stringify(this.lines)}; stderr: ${JSON.stringify(this.stderr.trim())}`;
  }

  /**
   * Waits for an output line matching `pattern` (a string for equality, a RegExp, or a
   * predicate) that an earlier wait did not already take; returns it. Fails when the
   * deadline passes or the client's output ends first.
   */
  waitFor(pattern, what = String(pattern), timeout = T) {
    const matches = typeof pattern === 'function' ? pattern
      : pattern instanceof RegExp ? (l) => pattern.test(l)
        : (l) => l === pattern;
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const i = this.lines.findIndex((l, idx) => !this.consumed.has(idx) && matches(l));
          if (i >= 0) {
            this.consumed.add(i);
            finish();
            resolve(this.lines[i]);
          } else if (this.ended) {
            finish();
            reject(new Error(`${this.label}: output ended (${JSON.stringify(this.status)}) ` +
              `before ${what}; ${this.describe()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.label}: no ${what} within ${timeout} ms; ${this.describe()}`));
      }, timeout);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /** Types a line. */
  send(line) {
    log(`${this.label} < ${line}`);
    this.child.stdin.write(`${line}\n`);
  }

  /** Closes stdin: the client says quit and exits. */
  closeInput() {
    this.child.stdin.end();
  }

  /** Waits for the process to end (and its output to be read); returns {code, signal}. */
  async exited(timeout = T) {
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(
        `${this.label}: still running after ${timeout} ms; ${this.describe()}`)), timeout);
    });
    try {
      return await Promise.race([this.done, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if it still runs. */
  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
    }
  }
}
