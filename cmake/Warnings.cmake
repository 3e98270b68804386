# Warnings are errors in our own code. Third-party sources (MicroPython) get
# their own, looser flags in MicroPythonCore.cmake.
#
# GCC 12's -Wrestrict misfires at -O3 inside libstdc++'s string operator+
# (GCC bugs 105329, 105651), e.g. in GoogleTest's printer for protobuf
# messages: it stays a warning there instead of failing the release build.
set(THREADFLEET_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter
    $<$<AND:$<COMPILE_LANG_AND_ID:CXX,GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-error=restrict>)

function(threadfleet_warnings target)
  target_compile_options(${target} PRIVATE ${THREADFLEET_WARNINGS})
endfunction()
