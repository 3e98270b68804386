# The Fleet API (fleet_service.h) and what it is built from: the event hub,
# the per-call authorization and audit, and the worker pool that runs board
# calls off gRPC's threads. Included from CMakeLists.txt here.
pkg_check_modules(API_GRPCPP REQUIRED IMPORTED_TARGET grpc++)

add_library(fleetd_api STATIC
  ${CMAKE_CURRENT_LIST_DIR}/call_auth.cc
  ${CMAKE_CURRENT_LIST_DIR}/event_hub.cc
  ${CMAKE_CURRENT_LIST_DIR}/fan_out.cc
  ${CMAKE_CURRENT_LIST_DIR}/fleet_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/api_values.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/output_stream_proxy.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/push_file_stream.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/service_call.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/watch_streams.cc
  ${CMAKE_CURRENT_LIST_DIR}/timer_queue.cc)
target_include_directories(fleetd_api PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_api PUBLIC
  fleetd_core
  fleetd_links
  fleet_proto_cpp
  PkgConfig::API_GRPCPP
  absl::status
  absl::statusor
  absl::strings
  absl::str_format
  absl::synchronization
  absl::time)
threadfleet_warnings(fleetd_api)

# Unit tests: real SQLite in a temporary directory, no sockets.
foreach(test event_hub_test call_auth_test fan_out_test timer_queue_test)
  add_executable(${test} ${CMAKE_CURRENT_LIST_DIR}/${test}.cc)
  target_link_libraries(${test} PRIVATE fleetd_api fleetd_testing_store GTest::gmock GTest::gtest_main)
  threadfleet_warnings(${test})
  gtest_discover_tests(${test} TEST_PREFIX "${test}." DISCOVERY_MODE PRE_TEST PROPERTIES TIMEOUT 60)
endforeach()

# The service over gRPC with TLS, a real store, real links and two real
# `fleetboard serve` processes with a fresh lab PKI (testing.cmake).
if(TARGET fleetd_testing_lab)
  add_executable(fleet_service_test ${CMAKE_CURRENT_LIST_DIR}/fleet_service_test.cc)
  target_link_libraries(fleet_service_test PRIVATE fleetd_api fleetd_monitor fleetd_testing_lab GTest::gmock GTest::gtest_main)
  threadfleet_warnings(fleet_service_test)
  gtest_discover_tests(fleet_service_test TEST_PREFIX "fleet_service_test." DISCOVERY_MODE PRE_TEST
    PROPERTIES TIMEOUT 120 LABELS integration)
endif()
