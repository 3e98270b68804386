# The fleetd process around the Fleet API: its config file, the lab monitor
# (board links -> health, events, programs), the HTTP endpoint with its
# metrics, and the `fleetd` executable. Included from CMakeLists.txt here.
find_package(PkgConfig REQUIRED)
find_package(yaml-cpp REQUIRED)
pkg_check_modules(PROCESS_GRPCPP REQUIRED IMPORTED_TARGET grpc++)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(CLI11 REQUIRED IMPORTED_TARGET CLI11)
# Debian ships no pkg-config file for gRPC's reflection library.
find_library(GRPCPP_REFLECTION_LIBRARY grpc++_reflection REQUIRED)

# fleetd.yaml.
add_library(fleetd_config STATIC ${CMAKE_CURRENT_LIST_DIR}/config.cc)
target_include_directories(fleetd_config PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_config
  PUBLIC absl::status absl::statusor absl::strings absl::time
  PRIVATE fleetd_core server_common yaml-cpp)
threadfleet_warnings(fleetd_config)

# Board links -> health aggregator, fleet events, stored programs.
add_library(fleetd_monitor STATIC ${CMAKE_CURRENT_LIST_DIR}/lab_monitor.cc)
target_include_directories(fleetd_monitor PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_monitor PUBLIC fleetd_api fleetd_links fleetd_core absl::synchronization absl::time)
threadfleet_warnings(fleetd_monitor)

# /healthz and /metrics.
add_library(fleetd_http STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cc)
target_include_directories(fleetd_http PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_http
  PUBLIC fleetd_links fleet_proto_cpp PkgConfig::PROCESS_GRPCPP absl::status absl::statusor absl::strings
         absl::str_format absl::synchronization absl::time
  PRIVATE PkgConfig::HTTPLIB)
threadfleet_warnings(fleetd_http)

# Unit tests: no boards; real SQLite files, real loopback sockets.
add_executable(config_test ${CMAKE_CURRENT_LIST_DIR}/config_test.cc)
target_link_libraries(config_test PRIVATE fleetd_config GTest::gmock GTest::gtest_main)
add_executable(lab_monitor_test ${CMAKE_CURRENT_LIST_DIR}/lab_monitor_test.cc)
target_link_libraries(lab_monitor_test PRIVATE fleetd_monitor fleetd_testing_store GTest::gmock GTest::gtest_main)
add_executable(http_server_test ${CMAKE_CURRENT_LIST_DIR}/http_server_test.cc)
target_link_libraries(http_server_test PRIVATE fleetd_http board_proto_cpp PkgConfig::HTTPLIB GTest::gmock
                                               GTest::gtest_main)
foreach(test config_test lab_monitor_test http_server_test)
  threadfleet_warnings(${test})
  gtest_discover_tests(${test} TEST_PREFIX "${test}." DISCOVERY_MODE PRE_TEST PROPERTIES TIMEOUT 60)
endforeach()

# The server itself: build/<preset>/bin/fleetd.
add_executable(fleetd ${CMAKE_CURRENT_LIST_DIR}/fleetd_main.cc)
target_link_libraries(fleetd PRIVATE
  fleetd_config fleetd_monitor fleetd_http fleetd_api fleetd_links fleetd_core
  PkgConfig::PROCESS_GRPCPP PkgConfig::CLI11 ${GRPCPP_REFLECTION_LIBRARY})
threadfleet_warnings(fleetd)
