#!/usr/bin/env bash
# A group on a private tmpfs too small for it: `unshare -m` gives this test a
# mount namespace of its own, with a 6 MiB tmpfs on /dev/shm that nothing
# else sees. The run must end in errors that name /dev/shm, never in SIGBUS
# (see `troupe-ipc-child small-shm`). Exit 77 (skipped) where the machine
# does not allow a mount namespace or the mount.
#
#   small_shm_test.sh path/to/troupe-ipc-child
set -uo pipefail
child=$1
if ! unshare -m --propagation private true 2>/dev/null; then
  echo "skipped: this machine does not allow a private mount namespace (unshare -m)"
  exit 77
fi
exec unshare -m --propagation private bash -c '
  mount -t tmpfs -o size=6m,mode=1777 tmpfs /dev/shm 2>/dev/null \
    || { echo "skipped: cannot mount a tmpfs on /dev/shm here"; exit 77; }
  "$1" small-shm
  rc=$?
  left=$(ls /dev/shm)
  [ -z "$left" ] || { echo "FAIL: left in /dev/shm: $left"; exit 1; }
  exit $rc' small-shm "$child"
