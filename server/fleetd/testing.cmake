# Test support for fleetd's tests. Included from CMakeLists.txt here, before
# the components whose tests use it.
#
# testing/temp_store.h, for unit tests: a real SqliteStore in a temporary
# directory (no sockets, no boards).
add_library(fleetd_testing_store STATIC ${CMAKE_CURRENT_LIST_DIR}/testing/temp_store.cc)
target_include_directories(fleetd_testing_store PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetd_testing_store PUBLIC fleetd_core absl::status absl::statusor absl::strings GTest::gtest)
threadfleet_warnings(fleetd_testing_store)

# testing/lab_processes.h, for integration tests: a fresh lab PKI and real
# `fleetboard serve` processes. FLEETD_TEST_FLEETBOARD names a fleetboard
# binary built elsewhere (e.g. build/default/bin/fleetboard) so a build dir for
# fleetd alone need not build the board.
set(FLEETD_TEST_FLEETBOARD "" CACHE FILEPATH "fleetboard binary for fleetd's integration tests")
if(FLEETD_TEST_FLEETBOARD)
  set(FLEETD_TEST_FLEETBOARD_PATH "${FLEETD_TEST_FLEETBOARD}")
elseif(TARGET fleetboard)
  set(FLEETD_TEST_FLEETBOARD_PATH "$<TARGET_FILE:fleetboard>")
endif()
if(FLEETD_TEST_FLEETBOARD_PATH)
  add_library(fleetd_testing_lab STATIC ${CMAKE_CURRENT_LIST_DIR}/testing/lab_processes.cc)
  target_include_directories(fleetd_testing_lab PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(fleetd_testing_lab PUBLIC absl::synchronization absl::time GTest::gtest)
  target_compile_definitions(fleetd_testing_lab PRIVATE
    THREADFLEET_FLEETBOARD="${FLEETD_TEST_FLEETBOARD_PATH}"
    THREADFLEET_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(NOT FLEETD_TEST_FLEETBOARD)
    add_dependencies(fleetd_testing_lab fleetboard)
  endif()
  threadfleet_warnings(fleetd_testing_lab)
endif()
