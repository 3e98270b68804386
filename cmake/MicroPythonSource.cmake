# Locates the MicroPython 1.25 source tree (fetched and sha256-checked into the
# build cache by fetch-micropython.sh; see design.md) as MICROPYTHON_DIR.
if(NOT MICROPYTHON_DIR)
  execute_process(
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/fetch-micropython.sh
    OUTPUT_VARIABLE _mp_dir
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _mp_result)
  if(NOT _mp_result EQUAL 0 OR NOT EXISTS "${_mp_dir}/py/mpconfig.h")
    message(FATAL_ERROR "Could not obtain the MicroPython source (see cmake/fetch-micropython.sh)")
  endif()
  set(MICROPYTHON_DIR "${_mp_dir}" CACHE PATH "MicroPython 1.25 source tree")
endif()
message(STATUS "MicroPython source: ${MICROPYTHON_DIR}")
