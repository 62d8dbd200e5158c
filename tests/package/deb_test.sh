#!/usr/bin/env bash
# The Debian package installs into a fresh root and the getting-started
# program of the docs builds and runs against it, with find_package(troupe)
# and with pkg-config.
#
#   deb_test.sh BUILD_DIR SNIPPETS_DIR
#
# BUILD_DIR's CPack configuration makes the package (the build's own
# libraries). The fresh root is this machine's root file system under a
# private overlay in a mount namespace, with any troupe removed from it:
# what the package installs is all of troupe there, and nothing is written to
# the real root. Exit 77 (skipped) where the machine allows no mount
# namespace or overlay (not root, or a container without the capability).
set -euo pipefail
build=$(cd "$1" && pwd)
snippets=$(cd "$2" && pwd)

work=$(mktemp -d /tmp/troupe-deb-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The package, and what it says about itself.
cpack -G DEB -B "$work/pkg" --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; echo "FAIL: cpack"; exit 1; }
deb=$(ls "$work"/pkg/troupe_*.deb)
depends=$(dpkg-deb --field "$deb" Depends)
echo "package: $(basename "$deb"), Depends: $depends"
for dep in libcaf-dev libboost-dev doctest-dev; do
  [[ $depends == *"$dep"* ]] || { echo "FAIL: the package does not depend on $dep"; exit 1; }
done
dpkg-deb --contents "$deb" >"$work/contents"
for f in usr/bin/troupe include/troupe/guarded.hpp include/troupe/ipc/node.hpp \
  cmake/troupe/troupeConfig.cmake pkgconfig/troupe-ipc.pc pkgconfig/troupe-actors.pc \
  libtroupe_ipc.a libtroupe_actors.a man/man1/troupe.1; do
  grep -q "$f" "$work/contents" || { echo "FAIL: the package has no $f"; exit 1; }
done

if [ "$(id -u)" -ne 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
  echo "skipped: no mount namespace here (needs root and CAP_SYS_ADMIN) for the fresh root"
  exit 77
fi

mkdir -p "$work/app"
cp "$snippets/CMakeLists.txt" "$work/app/CMakeLists.txt"
cp "$snippets/getting-started.cpp" "$work/app/main.cpp"
cp "$snippets/build-with-pkg-config.sh" "$work/app/build-with-pkg-config.sh"
cp "$deb" "$work/troupe.deb"

# Run in the fresh root: remove any troupe, install the package, build the
# program both ways and run it.
cat >"$work/in-root.sh" <<'INNER'
set -eu
if dpkg-query -W troupe >/dev/null 2>&1; then dpkg --purge troupe >/dev/null; fi
rm -rf /usr/local/include/troupe /usr/local/lib/cmake/troupe /usr/local/lib/libtroupe_* \
  /usr/local/lib/pkgconfig/troupe-* /usr/local/bin/troupe /opt/troupe
if [ -e /usr/include/troupe ] || ls /usr/lib/*/cmake/troupe /usr/lib/cmake/troupe >/dev/null 2>&1; then
  echo "FAIL: the fresh root still has a troupe"; exit 1
fi
dpkg -i /deb-test/troupe.deb >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version}' troupe)"
troupe --help | head -1
ls /usr/share/man/man1/troupe.1* >/dev/null
cd /deb-test/app
cmake -S . -B build-cmake -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-cmake >/dev/null
echo "find_package build:"; ./build-cmake/app
sh build-with-pkg-config.sh
echo "pkg-config build:"; ./app
INNER

status=0
unshare --mount --propagation private bash -s "$work" >"$work/out" 2>&1 <<'OUTER' || status=$?
set -eu
work=$1
root=$work/root
mkdir -p "$root"
mount -t tmpfs tmpfs "$root"
mkdir -p "$root/upper" "$root/work" "$root/merged"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$root/upper,workdir=$root/work" \
  "$root/merged" 2>/dev/null; then
  echo "no overlay file system here"
  exit 77
fi
m=$root/merged
mount --rbind /dev "$m/dev"
mount -t proc proc "$m/proc"
mkdir -p "$m/deb-test"
mount --bind "$work" "$m/deb-test"
# A clean environment: nothing of the caller's paths leaks into the build.
chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  bash /deb-test/in-root.sh
OUTER
cat "$work/out"
if [ "$status" -eq 77 ]; then
  echo "skipped: the fresh root needs an overlay file system"
  exit 77
fi
[ "$status" -eq 0 ] || { echo "FAIL: the fresh root's script failed ($status)"; exit 1; }
grep -q "^find_package build:" "$work/out" && grep -q "^pkg-config build:" "$work/out" ||
  { echo "FAIL: a build did not run"; exit 1; }
[ "$(grep -c '^counter = 3$' "$work/out")" -eq 2 ] && [ "$(grep -c '^echo found: true$' "$work/out")" -eq 2 ] ||
  { echo "FAIL: the program did not print what the docs say, twice"; exit 1; }
echo "the package installs into a fresh root; the getting-started program builds and runs both ways"
