#!/usr/bin/env bash
# Regenerates the README's pictures in docs/screenshots/: terminal.png and
# terminal-narrow.png (the full-screen client in tmux, captured with colours, turned
# into HTML by aha and rendered by headless Chromium) and browser-chat.png (the /chat
# page in Chromium). Everything runs on loopback against a fresh server in a temporary
# data directory; processes and temporary files are removed however the script ends.
#
#   bash e2e/screenshots/take.sh            # writes docs/screenshots/*.png
#   OUT=/tmp/shots bash e2e/screenshots/take.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/docs/screenshots}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PASSWORD='correct horse battery staple'

# Tools: Debian's tmux, aha and chromium, and playwright-core for Node (installed only
# when missing, so a machine that has them needs no network).
missing=()
command -v tmux >/dev/null || missing+=(tmux)
command -v aha >/dev/null || missing+=(aha)
command -v node >/dev/null || missing+=(nodejs npm)
[ -x "$CHROMIUM" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi
[ -d e2e/browser/node_modules/playwright-core ] || npm ci --prefix e2e/browser

CARGO_INCREMENTAL=0 cargo build --release -p natter-server -p natter-client
BIN=$ROOT/target/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natter-shots.XXXXXX")
TMUX_SOCKET=$WORK/tmux.sock
SERVER_PID=
cleanup() {
  tmux -S "$TMUX_SOCKET" kill-server 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A server of our own: ports chosen by the system, read back from what it prints.
"$BIN/natter-server" --data-dir "$WORK/data" --listen 127.0.0.1:0 \
  --web-listen 127.0.0.1:0 --irc-listen off --admin-password "$PASSWORD" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
CHAT_ADDR= WEB_URL=
for _ in $(seq 200); do
  CHAT_ADDR=$(sed -n 's/^natter-server listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/server.log")
  WEB_URL=$(sed -n 's|.*browser chat on \(http://127\.0\.0\.1:[0-9]*\)/chat.*|\1|p' "$WORK/server.log")
  [ -n "$CHAT_ADDR" ] && [ -n "$WEB_URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$CHAT_ADDR" ] || [ -z "$WEB_URL" ]; then
  echo "the server did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
echo "server: chat on $CHAT_ADDR, web on $WEB_URL"

# alice's account; this first connection also pins the server's self-signed
# certificate in the known-servers file every later client uses.
KNOWN_SERVERS=$WORK/known_servers
NATTER_PASSWORD=$PASSWORD XDG_CONFIG_HOME=$WORK "$BIN/natter" --plain --register \
  --server "$CHAT_ADDR" --user alice --known-servers "$KNOWN_SERVERS" </dev/null >/dev/null

mkdir -p "$OUT"
CHAT_ADDR=$CHAT_ADDR WEB_URL=$WEB_URL KNOWN_SERVERS=$KNOWN_SERVERS NATTER_BIN=$BIN/natter \
  CHROMIUM=$CHROMIUM TMUX_SOCKET=$TMUX_SOCKET WORK=$WORK OUT=$OUT \
  node e2e/screenshots/shots.mjs
ls -l "$OUT"/terminal.png "$OUT"/terminal-narrow.png "$OUT"/browser-chat.png
