# fleetd's fuzzers (THREADFLEET_FUZZ=ON, the `fuzz` preset). First the request
# text fleetd parses itself: selectors, board names, addresses, labels,
# authorization.
if(THREADFLEET_FUZZ)
  add_executable(request_text_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/request_text_fuzz.cc)
  target_link_libraries(request_text_fuzz PRIVATE fleetd_core)
  threadfleet_warnings(request_text_fuzz)
  threadfleet_fuzz_test(request_text_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/request_text LABELS fleetd)

  # What a board sends back to fleetd's health-stream client, after HTTP/2
  # parsing: response headers, gRPC message framing, trailers.
  add_executable(grpc_response_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/grpc_response_fuzz.cc)
  target_link_libraries(grpc_response_fuzz PRIVATE fleetd_links)
  threadfleet_warnings(grpc_response_fuzz)
  threadfleet_fuzz_test(grpc_response_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/grpc_response LABELS fleetd)
endif()
