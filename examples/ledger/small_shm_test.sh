#!/usr/bin/env bash
# The ledger demo with 8 workers (chaos on) on a 64 MB /dev/shm, Docker's
# default: `unshare -m` gives it a mount namespace of its own with a private
# 64 MiB tmpfs on /dev/shm. Passes when the bank's check passes and nothing is
# left there. Exit 77 (skipped) where the machine does not allow a mount
# namespace or the mount.
#
#   small_shm_test.sh path/to/ledger
set -uo pipefail
ledger=$1
if ! unshare -m --propagation private true 2>/dev/null; then
  echo "skipped: this machine does not allow a private mount namespace (unshare -m)"
  exit 77
fi
exec unshare -m --propagation private bash -c '
  mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm 2>/dev/null \
    || { echo "skipped: cannot mount a tmpfs on /dev/shm here"; exit 77; }
  out=$("$1" --workers 8 --transfers 60000 --duration 40 --chaos-interval 100 2>&1)
  rc=$?
  echo "$out"
  left=$(ls /dev/shm)
  [ -z "$left" ] || { echo "FAIL: left in /dev/shm: $left"; exit 1; }
  [ $rc -eq 0 ] || { echo "FAIL: the ledger exited with $rc"; exit 1; }
  grep -q "^check: PASS" <<<"$out" || { echo "FAIL: no passing check"; exit 1; }' \
  ledger "$ledger"
