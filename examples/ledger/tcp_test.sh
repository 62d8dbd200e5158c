#!/usr/bin/env bash
# The ledger demo with the ledger on another "host": one process tree runs
# `ledger --role ledger --listen 127.0.0.1:0` (published through CAF's
# middleman), another runs the bank's supervised workers with --connect, over
# loopback, chaos on. Passes when the bank's check passes, the ledger stops
# cleanly when the bank tells it to, and neither leaves anything in /dev/shm.
#
#   tcp_test.sh path/to/ledger
set -euo pipefail

ledger=$1

# 1. The ledger alone; its first line says where it listens (port 0: the
#    system picks a free one, so parallel runs do not collide).
coproc server { exec "$ledger" --role ledger --listen 127.0.0.1:0 --accounts 8; }
server_pid=$server_PID
exec {from_server}<&"${server[0]}" # bash drops server[0] once the ledger exits
trap 'kill -9 "$server_pid" 2>/dev/null || true' EXIT
IFS= read -r -t 30 line <&"$from_server" || { echo "FAIL: the ledger did not start"; exit 1; }
echo "$line"
[[ $line =~ ^ledger\ listening\ on\ 127\.0\.0\.1:([0-9]+)\  ]] || { echo "FAIL: '$line'"; exit 1; }
port=${BASH_REMATCH[1]}

# 2. The bank in a process tree of its own, reaching the ledger over TCP.
set +e
out=$("$ledger" --connect "127.0.0.1:$port" --accounts 8 --workers 3 --transfers 60000 \
  --duration 40 --chaos-interval 100)
bank_rc=$?
set -e
echo "$out"

# 3. The bank told the ledger to stop: it exits by itself, with status 0.
rest=$(cat <&"$from_server")
echo "$rest"
wait "$server_pid"
server_rc=$?
trap - EXIT

fail=0
check() { grep -Eq -- "$1" <<<"$2" || { echo "FAIL: no line matches '$1'"; fail=1; }; }
check '^3 worker processes started, 60000 transfers over 8 accounts, ledger at 127\.0\.0\.1:' "$out"
check '^  transfers acknowledged: 60000 of 60000 in ' "$out"
check '^  workers killed: [1-9][0-9]*, restarts: [0-9]+$' "$out"
check '^  total of all balances: 8000 \(opening total 8000\)$' "$out"
check '^check: PASS ' "$out"
check '^shared memory: /dev/shm/troupe\.ledger-[0-9]+ removed$' "$out"
check '^ledger stopped$' "$rest"
((bank_rc == 0)) || { echo "FAIL: the bank exited with $bank_rc"; fail=1; }
((server_rc == 0)) || { echo "FAIL: the ledger exited with $server_rc"; fail=1; }
if [ -e "/dev/shm/troupe.ledger-$server_pid" ]; then
  echo "FAIL: /dev/shm/troupe.ledger-$server_pid is left over"
  fail=1
fi
exit $fail
