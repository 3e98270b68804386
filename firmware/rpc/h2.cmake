# gRPC over HTTP/2 (nghttp2), server side: the layer between TLS and the
# BoardControl handlers, plus its tests and its fuzzer.
find_package(PkgConfig REQUIRED)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)

add_library(fleetrpc_h2 STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/h2server.c
  ${CMAKE_CURRENT_SOURCE_DIR}/grpc_frame.c
  ${CMAKE_CURRENT_SOURCE_DIR}/grpc_timeout.c)
target_include_directories(fleetrpc_h2 PUBLIC ${PROJECT_SOURCE_DIR})
set_target_properties(fleetrpc_h2 PROPERTIES C_STANDARD 11)
target_link_libraries(fleetrpc_h2 PUBLIC PkgConfig::NGHTTP2)
threadfleet_warnings(fleetrpc_h2)

# ---- Tests: gRPC C++ (generic stub, raw bytes) as an independent client over
# loopback TCP.
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++)
add_executable(h2server_test ${CMAKE_CURRENT_SOURCE_DIR}/h2server_test.cc)
target_link_libraries(h2server_test PRIVATE fleetrpc_h2 fleetrpc_os_socket PkgConfig::GRPCPP GTest::gtest_main
  pthread)
threadfleet_warnings(h2server_test)
gtest_discover_tests(h2server_test
  DISCOVERY_MODE PRE_TEST
  TEST_PREFIX "h2server."
  PROPERTIES TIMEOUT 120 LABELS "unit;firmware")

# ---- Fuzzer (THREADFLEET_FUZZ=ON, the `fuzz` preset): raw client bytes into
# a connection serving a small test service.
if(THREADFLEET_FUZZ)
  add_executable(h2server_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/h2server_fuzz.cc)
  target_link_libraries(h2server_fuzz PRIVATE fleetrpc_h2)
  threadfleet_warnings(h2server_fuzz)
  threadfleet_fuzz_test(h2server_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/h2server LABELS firmware)
endif()
