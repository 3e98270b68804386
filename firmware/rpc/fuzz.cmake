# Fuzzers of the BoardControl service (THREADFLEET_FUZZ=ON, the `fuzz`
# preset): requests through the HTTP/2 engine into the real handlers of a
# real board. Included by firmware/rpc/CMakeLists.txt after service.cmake.
if(THREADFLEET_FUZZ)
  add_executable(board_request_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/board_request_fuzz.cc)
  target_link_libraries(board_request_fuzz PRIVATE fleetrpc_service fleetrpc_h2 pthread)
  threadfleet_warnings(board_request_fuzz)
  threadfleet_fuzzer(board_request_fuzz)
  # New inputs go to the build tree; the committed seeds are only read.
  set(BOARD_REQUEST_FUZZ_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/board-request-corpus)
  file(MAKE_DIRECTORY ${BOARD_REQUEST_FUZZ_CORPUS})
  add_test(NAME board_request_fuzz
    COMMAND board_request_fuzz -max_total_time=${THREADFLEET_FUZZ_SECONDS} -rss_limit_mb=2048 -timeout=10
      ${BOARD_REQUEST_FUZZ_CORPUS} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/board_request)
  set_tests_properties(board_request_fuzz PROPERTIES TIMEOUT ${THREADFLEET_FUZZ_TIMEOUT} LABELS "fuzz;firmware")
endif()
