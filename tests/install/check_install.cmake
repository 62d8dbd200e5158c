# check_install.cmake: proves that an installed troupe can be consumed with
# find_package(troupe). Installs the build tree into a scratch prefix, then
# configures, builds and runs the getting-started program of the docs
# (docs/getting-started.md: its CMakeLists.txt and main.cpp, as the docs'
# snippet check took them out) against that prefix.
#
#   cmake -DTROUPE_BUILD_DIR=... -DSNIPPETS_DIR=... -DWORK_DIR=...
#         -DGENERATOR=... [-DSANITIZER_FLAGS=-fsanitize=address;...] -P check_install.cmake

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${TROUPE_BUILD_DIR}" --prefix "${prefix}")
foreach(f include/troupe/guarded.hpp lib/cmake/troupe/troupeConfig.cmake
          lib/cmake/troupe/FindCAF.cmake lib/pkgconfig/troupe-ipc.pc bin/troupe
          share/man/man1/troupe.1)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# A sanitized troupe needs the sanitizer runtime in the consumer too, and the
# same checks (SANITIZER_FLAGS is troupe's TROUPE_SANITIZER_FLAGS list).
list(JOIN SANITIZER_FLAGS " " flags)
set(consumer_src "${WORK_DIR}/consumer-src")
file(MAKE_DIRECTORY "${consumer_src}")
configure_file("${SNIPPETS_DIR}/CMakeLists.txt" "${consumer_src}/CMakeLists.txt" COPYONLY)
configure_file("${SNIPPETS_DIR}/getting-started.cpp" "${consumer_src}/main.cpp" COPYONLY)
run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=${flags}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
run("${WORK_DIR}/consumer/app")
if(NOT last_output MATCHES "counter = 3\necho found: true")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
message("${last_output}")

# The same program built with the docs' pkg-config command, the prefix found
# from where troupe-ipc.pc lies. Not in a sanitized build: that command has
# no sanitizer flags, which a sanitized troupe needs in its users.
if(NOT SANITIZER_FLAGS)
  configure_file("${SNIPPETS_DIR}/build-with-pkg-config.sh" "${consumer_src}/build.sh" COPYONLY)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${prefix}/lib/pkgconfig"
                          sh build.sh
                  WORKING_DIRECTORY "${consumer_src}" RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the pkg-config build failed (${rc}):\n${out}")
  endif()
  run("${consumer_src}/app")
  if(NOT last_output MATCHES "counter = 3\necho found: true")
    message(FATAL_ERROR "unexpected output of the pkg-config build: ${last_output}")
  endif()
  message("pkg-config build: ${last_output}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
