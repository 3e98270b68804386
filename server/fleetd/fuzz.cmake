# Fuzzer of the request text fleetd parses itself (THREADFLEET_FUZZ=ON, the
# `fuzz` preset): selectors, board names, addresses, labels, authorization.
if(THREADFLEET_FUZZ)
  add_executable(request_text_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/request_text_fuzz.cc)
  target_link_libraries(request_text_fuzz PRIVATE fleetd_core)
  threadfleet_warnings(request_text_fuzz)
  threadfleet_fuzzer(request_text_fuzz)
  # New inputs go to the build tree; the committed seeds are only read.
  set(REQUEST_TEXT_FUZZ_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/request-text-corpus)
  file(MAKE_DIRECTORY ${REQUEST_TEXT_FUZZ_CORPUS})
  add_test(NAME request_text_fuzz
    COMMAND request_text_fuzz -max_total_time=${THREADFLEET_FUZZ_SECONDS} -rss_limit_mb=2048 -timeout=10
      ${REQUEST_TEXT_FUZZ_CORPUS} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/request_text)
  set_tests_properties(request_text_fuzz PROPERTIES TIMEOUT ${THREADFLEET_FUZZ_TIMEOUT} LABELS "fuzz;fleetd")
endif()
