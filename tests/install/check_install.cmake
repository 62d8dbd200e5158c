# check_install.cmake: proves that an installed troupe can be consumed with
# find_package(troupe). Installs the build tree into a scratch prefix, then
# configures, builds and runs tests/install/consumer against that prefix.
#
#   cmake -DTROUPE_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=...
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
          lib/cmake/troupe/FindCAF.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# A sanitized troupe needs the sanitizer runtime in the consumer too, and the
# same checks (SANITIZER_FLAGS is troupe's TROUPE_SANITIZER_FLAGS list).
list(JOIN SANITIZER_FLAGS " " flags)
run(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=${flags}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
run("${WORK_DIR}/consumer/consumer")
if(NOT last_output MATCHES "consumer: counter = 3")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
message("${last_output}")
file(REMOVE_RECURSE "${WORK_DIR}")
