#!/usr/bin/env bash
# `troupe top` against a running ledger demo: one frame with --once, then the
# live view in tmux (send-keys, capture-pane): the nodes and their rates show,
# `s` changes the sort, `q` quits.
#
#   top_test.sh TROUPE LEDGER
#
# Exit 77 (skipped) without tmux. Every wait polls for what it waits on, with
# a deadline.
set -euo pipefail
troupe=$1
ledger=$2

if ! command -v tmux >/dev/null; then
  echo "skipped: tmux is not installed (apt-get install tmux)"
  exit 77
fi

work=$(mktemp -d)
socket="troupe-top-test-$$"
ledger_pid=
cleanup() {
  tmux -L "$socket" kill-server 2>/dev/null || true
  if [ -n "$ledger_pid" ] && kill -0 "$ledger_pid" 2>/dev/null; then
    kill -INT "$ledger_pid" 2>/dev/null || true
    wait "$ledger_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  [ -f "$work/screen" ] && { echo "--- last screen:"; cat "$work/screen"; }
  exit 1
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

"$ledger" --workers 2 --transfers 2000000 --duration 90 --chaos-interval 0 \
  >"$work/ledger.out" 2>&1 &
ledger_pid=$!
group="ledger-$ledger_pid"
group_up() { "$troupe" ls "$group" 2>/dev/null | grep -q ' running (' ; }
wait_for 30 group_up || fail "the ledger's group $group did not come up"
# Both workers joined: three live slots.
three_nodes() { [ "$("$troupe" ls "$group" | grep -c ' alive ')" -ge 3 ]; }
wait_for 30 three_nodes || fail "the ledger's workers did not join"

# --once: one plain frame, rates over 0.5 s.
"$troupe" top --once --interval 0.5 "$group" >"$work/once" || fail "top --once failed"
cat "$work/once"
grep -q "^group $group  running" "$work/once" || fail "--once: no running group line"
grep -qE "^SLOT +PID +STATUS +IN/S +OUT/S +BYTES/S" "$work/once" || fail "--once: no header"
grep -qE "^[0-9]+ +$ledger_pid +alive .*ledger" "$work/once" || fail "--once: no bank row"
# The bank receives transfers: a rate above zero on its row.
bank_in=$(awk -v pid="$ledger_pid" '$2 == pid { print $4 }' "$work/once")
[ -n "$bank_in" ] && [ "$bank_in" != "0" ] && [ "$bank_in" != "-" ] ||
  fail "--once: the bank's IN/S is '$bank_in', not a rate above 0"
grep -q "^  ledger  slot " "$work/once" || fail "--once: the published name 'ledger' is missing"
"$troupe" top --once no-such-group-$$ >/dev/null 2>&1 && fail "a missing group did not fail"

# The live view.
tmux -L "$socket" new-session -d -x 200 -y 40 "$troupe top --interval 0.5 $group"
screen_has() {
  tmux -L "$socket" capture-pane -p >"$work/screen" 2>/dev/null && grep -qE "$1" "$work/screen"
}
wait_for 20 screen_has "^SLOT +PID" || fail "the live view shows no node table"
wait_for 20 screen_has "^[0-9]+ +$ledger_pid +alive +[0-9.]+k? " ||
  fail "the live view shows no rate for the bank"
screen_has "sorted by slot" || fail "the live view does not start sorted by slot"
tmux -L "$socket" send-keys s
wait_for 10 screen_has "sorted by frames in" || fail "s did not change the sort"
tmux -L "$socket" send-keys q
gone() { ! tmux -L "$socket" has-session 2>/dev/null; }
wait_for 10 gone || fail "q did not quit"
echo "troupe top: --once and the live view show the ledger's $group"
