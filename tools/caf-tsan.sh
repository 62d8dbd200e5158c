#!/usr/bin/env bash
# Builds CAF 0.17.6, the version Debian ships, with ThreadSanitizer, into a
# prefix outside the source tree, once per machine, and prints the prefix.
# The prefix's name holds the version and a hash of the flags and the
# compiler, so that other flags make another build. The source is Debian's
# own (the orig tarball of Debian's actor-framework package, checked against
# the SHA-256 in Debian's .dsc).
#
#   tools/caf-tsan.sh    # builds if needed (about 15 minutes on 2 cores)
#
# TROUPE_CACHE_DIR overrides the cache directory: /var/cache/troupe for root
# (root's home is closed to other users, and the suite runs some of its
# programs as `nobody`, which must load this CAF too), otherwise
# $XDG_CACHE_HOME/troupe or ~/.cache/troupe.
set -euo pipefail

version=0.17.6
sha256=e2bf5bd243f08bb7d8adde197cfe3e6d71314ed3378fe0692f8932f4c3b3928c
url=http://deb.debian.org/debian/pool/main/a/actor-framework/actor-framework_${version}.orig.tar.gz
flags="-fsanitize=thread -g"

packages=(g++ cmake ninja-build curl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2
fi

key=$(printf '%s|%s|%s' "$version" "$flags" "$(c++ --version | head -n 1)" | sha256sum | cut -c1-12)
if [ "$(id -u)" -eq 0 ]; then
  cache=${TROUPE_CACHE_DIR:-/var/cache/troupe}
else
  cache=${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}
fi
prefix=$cache/caf-$version-tsan-$key
if [[ -f $prefix/.complete ]]; then
  echo "$prefix"
  exit 0
fi

umask 022 # readable by every user, as Debian's CAF is
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "caf-tsan: building CAF $version with $flags into $prefix" >&2
curl -fsSL "$url" -o "$work/caf.tar.gz"
echo "$sha256  $work/caf.tar.gz" | sha256sum --check --quiet
tar xzf "$work/caf.tar.gz" -C "$work"
# Debian's one change to CAF's headers (its package patch for g++ 11 and
# later): receive_buffer.hpp uses std::numeric_limits without <limits>.
sed -i 's|^#include <cstddef>$|#include <cstddef>\n#include <limits>|' \
  "$work/actor-framework-$version/libcaf_io/caf/io/network/receive_buffer.hpp"
grep -q '^#include <limits>$' \
  "$work/actor-framework-$version/libcaf_io/caf/io/network/receive_buffer.hpp"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$work/actor-framework-$version" -B "$work/build" -G Ninja "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes \
  -DCAF_NO_TOOLS=yes -DCAF_NO_PYTHON=yes -DCAF_NO_SUMMARY=yes \
  -DCMAKE_INSTALL_PREFIX="$prefix.partial" >&2
cmake --build "$work/build" -j "$(nproc)" >&2
rm -rf "$prefix.partial"
cmake --install "$work/build" >&2
rm -rf "$prefix"
mv "$prefix.partial" "$prefix"
touch "$prefix/.complete"
echo "$prefix"
