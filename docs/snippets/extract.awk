# Takes the C++ snippets out of a page of the guide, so that the suite
# compiles every one of them (docs/snippets/CMakeLists.txt).
#
#   awk -v page=NAME -v src=PATH -v out=DIR -f extract.awk PAGE.md
#
# Every ```cpp block must follow a marker line:
#   <!-- snippet: program [NAME] -->  a whole translation unit; written to
#                                     DIR/NAME.cpp (NAME defaults to
#                                     PAGE-N), compiled alone
#   <!-- snippet: body -->            statements, compiled inside a function
#                                     that has `sys` (caf::actor_system&),
#                                     `self` (caf::scoped_actor&) and `ctx`
#                                     (troupe::ipc::process_context&); all
#                                     of a page's go to DIR/PAGE-bodies.cpp
# A cpp block without a marker is an error: no snippet goes unchecked.
# A block of any language may follow `<!-- snippet: file NAME -->`: it is
# written to DIR/NAME as it is (a CMakeLists.txt or a command that a test
# runs). `#line` directives make a compiler's message name the page and its
# line. Prints one line per file written: "program NAME", "bodies PAGE" or
# "file NAME".

function fail(msg) {
  printf "%s:%d: %s\n", src, NR, msg > "/dev/stderr"
  failed = 1
  exit 1
}

BEGIN { kind = ""; in_block = 0; in_other = 0; count = 0; bodies = 0 }

/^<!-- snippet: / && !in_other {
  if (in_block) fail("a snippet marker inside a code block")
  kind = $3
  name = ($4 != "-->" && $4 != "") ? $4 : ""
  if (kind != "program" && kind != "body" && kind != "file")
    fail("unknown snippet kind '" kind "'")
  if (kind == "file" && name == "") fail("a file snippet needs a name")
  next
}

# A block that is no snippet (a shell session, a table drawn in text).
/^```/ && !in_block && !in_other && kind == "" && $0 !~ /^```cpp[ \t]*$/ {
  in_other = 1
  next
}
/^```[ \t]*$/ && in_other {
  in_other = 0
  next
}
in_other { next }

/^```[a-z]*[ \t]*$/ && !in_block {
  if (kind == "") fail("a cpp block without a snippet marker (<!-- snippet: program|body -->)")
  if (kind != "file" && $0 !~ /^```cpp[ \t]*$/) fail("a " kind " snippet that is not a cpp block")
  in_block = 1
  ++count
  start = NR + 1
  code = ""
  includes = ""
  next
}

/^```[ \t]*$/ && in_block {
  in_block = 0
  if (kind == "file") {
    file = out "/" name
    printf "%s", code > file
    close(file)
    print "file " name
  } else if (kind == "program") {
    if (name == "") name = page "-" count
    file = out "/" name ".cpp"
    printf "// Generated from %s by docs/snippets/extract.awk: edit the page.\n", src > file
    printf "#line %d \"%s\"\n%s", start, src, code > file
    close(file)
    print "program " name
  } else {
    # Includes go to the top of the file, the rest into its own function;
    # blank lines keep the line numbers.
    body_includes = body_includes includes
    ++bodies
    body_code = body_code sprintf("namespace snippet_%d {\n[[maybe_unused]] void run(caf::actor_system& sys, caf::scoped_actor& self,\n                          troupe::ipc::process_context& ctx) {\n  (void) sys, (void) self, (void) ctx;\n  {\n#line %d \"%s\"\n%s  }\n}\n} // namespace snippet_%d\n", bodies, start, src, code, bodies)
  }
  kind = ""
  name = ""
  next
}

in_block {
  if (kind == "body" && $0 ~ /^#include /) {
    includes = includes $0 "\n"
    code = code "\n"
  } else {
    code = code $0 "\n"
  }
  next
}

END {
  if (failed) exit 1
  if (in_block || in_other) fail("a code block that never ends")
  if (kind != "") fail("a snippet marker without a cpp block after it")
  if (bodies > 0) {
    file = out "/" page "-bodies.cpp"
    printf "// Generated from %s by docs/snippets/extract.awk: edit the page.\n", src > file
    printf "#include \"snippet_context.hpp\"\n%s\nnamespace snippets_%s {\n%s} // namespace snippets_%s\n", body_includes, page_id(page), body_code, page_id(page) > file
    close(file)
    print "bodies " page
  }
}

function page_id(p) {
  gsub(/[^A-Za-z0-9_]/, "_", p)
  return p
}
