# Warnings are errors in our own code. Third-party sources (MicroPython) get
# their own, looser flags in MicroPythonCore.cmake.
set(THREADFLEET_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter)

function(threadfleet_warnings target)
  target_compile_options(${target} PRIVATE ${THREADFLEET_WARNINGS})
endfunction()
