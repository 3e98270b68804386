# BoardControl: the board's gRPC service handlers (nanopb), on top of the
# supervisor and the flash. Included by firmware/rpc/CMakeLists.txt.
#
# The nanopb code is generated at build time from the one proto and its
# .options file (the limits); nanopb_generator.py finds board.options beside
# board.proto through -I.
find_program(NANOPB_GENERATOR nanopb_generator.py REQUIRED)
find_library(NANOPB_LIBRARY NAMES libprotobuf-nanopb.a protobuf-nanopb REQUIRED)
find_library(MBEDCRYPTO_LIBRARY mbedcrypto REQUIRED)

set(BOARD_PB_PROTO_DIR ${PROJECT_SOURCE_DIR}/proto)
set(BOARD_PB_PROTO threadfleet/board/v1/board.proto)
set(BOARD_PB_OUT ${CMAKE_CURRENT_BINARY_DIR}/nanopb)
set(BOARD_PB_C ${BOARD_PB_OUT}/threadfleet/board/v1/board.pb.c)
set(BOARD_PB_H ${BOARD_PB_OUT}/threadfleet/board/v1/board.pb.h)

add_custom_command(
  OUTPUT ${BOARD_PB_C} ${BOARD_PB_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${BOARD_PB_OUT}
  COMMAND ${NANOPB_GENERATOR} -q -I ${BOARD_PB_PROTO_DIR} -D ${BOARD_PB_OUT} ${BOARD_PB_PROTO}
  WORKING_DIRECTORY ${BOARD_PB_PROTO_DIR}
  DEPENDS ${BOARD_PB_PROTO_DIR}/${BOARD_PB_PROTO} ${BOARD_PB_PROTO_DIR}/threadfleet/board/v1/board.options
  COMMENT "Generating nanopb code for ${BOARD_PB_PROTO}"
  VERBATIM)

add_library(fleetrpc_service STATIC
  ${BOARD_PB_C}
  ${CMAKE_CURRENT_SOURCE_DIR}/board_service.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_files.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_flash.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_health.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_literal.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_output.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_pb.c
  ${CMAKE_CURRENT_SOURCE_DIR}/board_programs.c
)
set_target_properties(fleetrpc_service PROPERTIES C_STANDARD 11)
target_include_directories(fleetrpc_service PUBLIC ${PROJECT_SOURCE_DIR} ${BOARD_PB_OUT})
target_compile_definitions(fleetrpc_service PRIVATE
  THREADFLEET_VERSION="${PROJECT_VERSION}")
target_link_libraries(fleetrpc_service PUBLIC fleetvm ${NANOPB_LIBRARY} ${MBEDCRYPTO_LIBRARY})
threadfleet_warnings(fleetrpc_service)
# Generated code builds with the generator's expectations, not our -Werror.
set_source_files_properties(${BOARD_PB_C} PROPERTIES COMPILE_OPTIONS "-Wno-error")

# ---- Tests: a real board (VM, supervisor, flash) serving BoardControl through
# the HTTP/2 engine over loopback TCP; gRPC C++ (generic stub, nanopb-encoded
# requests) as the client. One VM per process.
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++)
add_executable(board_service_test ${CMAKE_CURRENT_SOURCE_DIR}/board_service_test.cc)
target_link_libraries(board_service_test PRIVATE fleetrpc_service fleetrpc_h2 fleetrpc_os_socket
  PkgConfig::GRPCPP GTest::gtest_main pthread)
target_compile_definitions(board_service_test PRIVATE
  THREADFLEET_SEED_SCRIPTS="${THREADFLEET_SEED_SCRIPTS}")
threadfleet_warnings(board_service_test)
gtest_discover_tests(board_service_test
  DISCOVERY_MODE PRE_TEST
  TEST_PREFIX "board_service."
  PROPERTIES TIMEOUT 60 LABELS "unit;firmware")
