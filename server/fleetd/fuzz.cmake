# Fuzzer of the request text fleetd parses itself (THREADFLEET_FUZZ=ON, the
# `fuzz` preset): selectors, board names, addresses, labels, authorization.
if(THREADFLEET_FUZZ)
  add_executable(request_text_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/request_text_fuzz.cc)
  target_link_libraries(request_text_fuzz PRIVATE fleetd_core)
  threadfleet_warnings(request_text_fuzz)
  threadfleet_fuzz_test(request_text_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/request_text LABELS fleetd)
endif()
