# Board links (how fleetd talks to each board) and the health aggregator
# (what fleetd makes of the boards' health). Included from CMakeLists.txt here.
find_package(absl REQUIRED)
pkg_check_modules(LINKS_GRPCPP REQUIRED IMPORTED_TARGET grpc++)

add_library(fleetd_links STATIC
  ${CMAKE_CURRENT_LIST_DIR}/board_link.cc
  ${CMAKE_CURRENT_LIST_DIR}/health.cc)
target_include_directories(fleetd_links PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_links PUBLIC
  board_proto_cpp
  server_common
  PkgConfig::LINKS_GRPCPP
  absl::random_random
  absl::status
  absl::statusor
  absl::str_format
  absl::strings
  absl::synchronization
  absl::time)
threadfleet_warnings(fleetd_links)

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
endif()
