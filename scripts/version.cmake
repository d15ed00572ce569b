# version.cmake - copy script SRC to DST with @PROJECT_VERSION@ replaced by VERSION, executable.
#   cmake -DSRC=... -DDST=... -DVERSION=... -P version.cmake
file(READ "${SRC}" text)
string(REPLACE "@PROJECT_VERSION@" "${VERSION}" text "${text}")
get_filename_component(dir "${DST}" DIRECTORY)
file(MAKE_DIRECTORY "${dir}")
file(WRITE "${DST}.tmp" "${text}")
execute_process(COMMAND chmod 0755 "${DST}.tmp" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "chmod ${DST}.tmp failed")
endif()
file(RENAME "${DST}.tmp" "${DST}")
