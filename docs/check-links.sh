#!/usr/bin/env bash
# Every page of the guide links the types it names to their pages in the API
# reference: where a page names a class or struct of troupe by its qualified
# name (`troupe::guarded<T>`, `troupe::ipc::node::create`), the page as
# Doxygen rendered it must link to that class's page. Doxygen links such
# names by itself, in prose and in code spans; this check is what keeps it
# so (a name it cannot resolve, or one written unqualified only, fails).
#
#   check-links.sh TAGFILE HTML_DIR PAGE.md...
#
# TAGFILE is the reference's tag file (docs/Doxyfile.in: GENERATE_TAGFILE),
# HTML_DIR its HTML output.
set -euo pipefail
tagfile=$1
html=$2
shift 2

# "name filename" of every class and struct the reference has a page for.
classes=$(awk '
  /<compound kind="(class|struct)"/ { want = 1; name = ""; next }
  want && /<name>/ { name = $0; sub(/.*<name>/, "", name); sub(/<\/name>.*/, "", name) }
  want && /<filename>/ {
    file = $0; sub(/.*<filename>/, "", file); sub(/<\/filename>.*/, "", file)
    print name, file; want = 0
  }
' "$tagfile" | grep -v '::detail')
[ -n "$classes" ] || { echo "check-links: no class in $tagfile"; exit 1; }

status=0
checked=0
for page in "$@"; do
  # Doxygen's name for docs/getting-started.md: md_docs_getting_started.html.
  base=$(basename "$page" .md)
  rendered="$html/md_docs_${base//-/_}.html"
  if [ ! -f "$rendered" ]; then
    echo "$page: no rendered page $rendered"
    status=1
    continue
  fi
  while read -r name file; do
    if grep -qE "(^|[^A-Za-z0-9_:])${name}([^A-Za-z0-9_]|\$)" "$page"; then
      checked=$((checked + 1))
      # The class's page, or a nested class's (`troupe::semaphore::lease`).
      if ! grep -qF "href=\"${file%.html}" "$rendered"; then
        echo "$page: names $name, but its rendered page does not link $file"
        status=1
      fi
    fi
  done <<<"$classes"
done
[ "$status" -eq 0 ] && echo "check-links: $# pages link the $checked types they name"
exit "$status"
