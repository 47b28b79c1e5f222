#!/usr/bin/env bash
# Runs the public irctest conformance suite against natter's IRC gateway (docs/IRC.md).
#
#   e2e/irctest/run.sh [core|sasl|chathistory|all|setup] [extra pytest arguments]
#
# The suite is third-party and is not part of natter: it is run from ../shared/irctest
# (or $IRCTEST_DIR), copied to a temp dir because pytest writes next to its files.
# A virtual environment with its requirements is made once in target/irctest-venv.
# natter-server is the workspace's build ($NATTER_SERVER to choose another).
#
# Tests natter cannot pass by design are deselected here and listed with their reasons
# in docs/IRC.md ("irctest results"); they are never counted as passed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
suite="${IRCTEST_DIR:-$root/../shared/irctest}"
what="${1:-all}"
shift || true

if [ ! -d "$suite/irctest" ]; then
    echo "irctest not found in $suite (set IRCTEST_DIR)" >&2
    exit 3
fi

venv="$root/target/irctest-venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "== making a Python virtual environment for irctest in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$suite/requirements.txt"
fi

if [ "$what" = setup ]; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$suite/." "$work/"

core=(connection_registration join part quit pingpong messages names who list cap utf8)
case "$what" in
    core) modules=("${core[@]}") ;;
    sasl) modules=(sasl) ;;
    chathistory) modules=(chathistory) ;;
    all) modules=("${core[@]}" sasl chathistory) ;;
    *) echo "usage: $0 [core|sasl|chathistory|all|setup] [pytest args]" >&2; exit 2 ;;
esac
files=()
for m in "${modules[@]}"; do
    files+=("irctest/server_tests/$m.py")
done

# Deselected by design: see docs/IRC.md for why each cannot pass on natter.
deselect=()
while read -r t; do
    [ -n "$t" ] && deselect+=(--deselect "$t")
done < <(grep -v '^#' "$root/e2e/irctest/by-design.txt" | cut -d' ' -f1)

cd "$work"
# irctest keeps its list of ports in use in the temp dir: one per run, so that runs side
# by side do not share (and race on) it.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
PYTHONPATH="$root/e2e/irctest:$work" "$venv/bin/python" -m pytest -p no:cacheprovider \
    --controller natter_controller \
    -m 'not implementation-specific and not deprecated and not strict' \
    "${deselect[@]}" "${files[@]}" "$@"
