# Board links (how fleetd talks to each board) and the health aggregator
# (what fleetd makes of the boards' health). Included from CMakeLists.txt here.
find_package(absl REQUIRED)
find_package(OpenSSL REQUIRED)
pkg_check_modules(LINKS_GRPCPP REQUIRED IMPORTED_TARGET grpc++)
pkg_check_modules(LINKS_NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)

add_library(fleetd_links STATIC
  ${CMAKE_CURRENT_LIST_DIR}/board_link.cc
  ${CMAKE_CURRENT_LIST_DIR}/grpc_response.cc
  ${CMAKE_CURRENT_LIST_DIR}/health.cc
  ${CMAKE_CURRENT_LIST_DIR}/health_streams.cc
  ${CMAKE_CURRENT_LIST_DIR}/link_credentials.cc
  ${CMAKE_CURRENT_LIST_DIR}/name_resolver.cc)
target_include_directories(fleetd_links PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_links PUBLIC
  board_proto_cpp
  server_common
  PkgConfig::LINKS_GRPCPP
  absl::random_random
  absl::flat_hash_map
  absl::status
  absl::statusor
  absl::str_format
  absl::strings
  absl::synchronization
  absl::time
  PRIVATE
  PkgConfig::LINKS_NGHTTP2
  OpenSSL::SSL)
threadfleet_warnings(fleetd_links)

# The gRPC response reader of fleetd's own HTTP/2 client: no sockets.
add_executable(grpc_response_test ${CMAKE_CURRENT_LIST_DIR}/grpc_response_test.cc)
target_link_libraries(grpc_response_test PRIVATE fleetd_links GTest::gmock GTest::gtest_main)
threadfleet_warnings(grpc_response_test)
gtest_discover_tests(grpc_response_test TEST_PREFIX "grpc_response_test." DISCOVERY_MODE PRE_TEST
  PROPERTIES TIMEOUT 60)

# Pure unit tests of the anomaly rules and the history: no sockets.
add_executable(health_test ${CMAKE_CURRENT_LIST_DIR}/health_test.cc)
target_link_libraries(health_test PRIVATE fleetd_links GTest::gmock GTest::gtest_main)
threadfleet_warnings(health_test)
gtest_discover_tests(health_test TEST_PREFIX "health_test." DISCOVERY_MODE PRE_TEST
  PROPERTIES TIMEOUT 60)

# Links against real `fleetboard serve` processes with a fresh lab PKI
# (testing.cmake).
if(TARGET fleetd_testing_lab)
  find_package(OpenSSL REQUIRED)
  add_executable(board_link_test ${CMAKE_CURRENT_LIST_DIR}/board_link_test.cc)
  target_link_libraries(board_link_test PRIVATE fleetd_links fleetd_testing_lab OpenSSL::Crypto GTest::gmock
    GTest::gtest_main)
  threadfleet_warnings(board_link_test)
  gtest_discover_tests(board_link_test TEST_PREFIX "board_link_test." DISCOVERY_MODE PRE_TEST
    PROPERTIES TIMEOUT 120 LABELS integration)

  add_executable(health_streams_test ${CMAKE_CURRENT_LIST_DIR}/health_streams_test.cc)
  target_link_libraries(health_streams_test PRIVATE fleetd_links fleetd_testing_lab GTest::gmock GTest::gtest_main)
  threadfleet_warnings(health_streams_test)
  gtest_discover_tests(health_streams_test TEST_PREFIX "health_streams_test." DISCOVERY_MODE PRE_TEST
    PROPERTIES TIMEOUT 60 LABELS integration)
endif()
