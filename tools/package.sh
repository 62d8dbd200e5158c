#!/usr/bin/env bash
# Builds troupe's Debian package with `cpack -G DEB`: the static libraries,
# headers, CMake package, pkg-config files, the `troupe` tool and its man
# page, installed under /usr and depending on Debian's CAF, Boost and doctest
# packages by name. Installs what the build needs (tools/bootstrap.sh).
#
#   tools/package.sh            the package in build-package/, its path printed
#   apt-get install ./build-package/troupe_*.deb
#
# TROUPE_PACKAGE_DIR overrides the build directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_PACKAGE_DIR:-$root/build-package}
TROUPE_BUILD_DIR=$build "$root/tools/bootstrap.sh" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX=/usr -DTROUPE_BUILD_TESTS=OFF -DTROUPE_BUILD_EXAMPLES=OFF \
  -DTROUPE_BUILD_BENCH=OFF -DTROUPE_BUILD_DOCS=OFF
cd "$build"
rm -f troupe_*.deb
cpack -G DEB >/dev/null
deb=$(ls "$build"/troupe_*.deb)
echo "troupe: $deb"
dpkg-deb --field "$deb" Package Version Architecture Depends
