# Test support for fleetd's integration tests (testing/lab_processes.h): a
# fresh lab PKI and real `fleetboard serve` processes. FLEETD_TEST_FLEETBOARD
# names a fleetboard binary built elsewhere (e.g. build/default/bin/fleetboard)
# so a build dir for fleetd alone need not build the board. Included from
# CMakeLists.txt here, before the components whose tests use it.
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
