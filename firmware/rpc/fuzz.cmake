# Fuzzers of the BoardControl service (THREADFLEET_FUZZ=ON, the `fuzz`
# preset): requests through the HTTP/2 engine into the real handlers of a
# real board. Included by firmware/rpc/CMakeLists.txt after service.cmake.
if(THREADFLEET_FUZZ)
  add_executable(board_request_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/board_request_fuzz.cc)
  target_link_libraries(board_request_fuzz PRIVATE fleetrpc_service fleetrpc_h2 pthread)
  threadfleet_warnings(board_request_fuzz)
  threadfleet_fuzz_test(board_request_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/board_request LABELS firmware)
endif()
