# check_output.cmake: runs a program and checks its exit code and output.
#
#   cmake -DPROGRAM=path [-DARGS=a;b] -DEXPECT=re1;re2;... -P check_output.cmake
#
# Passes when the program exits with 0 and each regular expression in EXPECT
# matches a line of its standard output, in the order given. With
# -DFILE=path -DFILE_EXPECT=re1;re2;..., each of those must also match a line
# of the file the program wrote (in any order); the file is removed first.

if(FILE)
  file(REMOVE "${FILE}")
endif()
execute_process(COMMAND ${PROGRAM} ${ARGS}
                OUTPUT_VARIABLE out
                ERROR_VARIABLE err
                RESULT_VARIABLE rc)
message("${out}")
if(err)
  message("stderr:\n${err}")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()

string(REPLACE ";" "\\;" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(pos 0)
list(LENGTH lines count)
foreach(re IN LISTS EXPECT)
  set(found FALSE)
  while(pos LESS count)
    list(GET lines ${pos} line)
    math(EXPR pos "${pos} + 1")
    if(line MATCHES "${re}")
      set(found TRUE)
      break()
    endif()
  endwhile()
  if(NOT found)
    message(FATAL_ERROR "expected a line matching '${re}' (in order) in the output")
  endif()
endforeach()

if(FILE)
  if(NOT EXISTS "${FILE}")
    message(FATAL_ERROR "${PROGRAM} did not write ${FILE}")
  endif()
  file(STRINGS "${FILE}" file_lines)
  foreach(re IN LISTS FILE_EXPECT)
    set(found FALSE)
    foreach(line IN LISTS file_lines)
      if(line MATCHES "${re}")
        set(found TRUE)
        break()
      endif()
    endforeach()
    if(NOT found)
      message(FATAL_ERROR "expected a line matching '${re}' in ${FILE}")
    endif()
  endforeach()
  file(REMOVE "${FILE}")
endif()
