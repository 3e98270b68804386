# The TLS layer (mbedTLS 2.28; Debian's libmbedtls-dev ships no pkg-config
# file, so the libraries are named directly) and the OS-socket transport that
# host tests and tools put under it.
add_library(fleetrpc_os_socket STATIC ${CMAKE_CURRENT_SOURCE_DIR}/os_socket.c)
target_include_directories(fleetrpc_os_socket PUBLIC ${PROJECT_SOURCE_DIR})
set_target_properties(fleetrpc_os_socket PROPERTIES C_STANDARD 11)
threadfleet_warnings(fleetrpc_os_socket)

add_library(fleetrpc_tls STATIC ${CMAKE_CURRENT_SOURCE_DIR}/tls.c)
target_include_directories(fleetrpc_tls PUBLIC ${PROJECT_SOURCE_DIR})
set_target_properties(fleetrpc_tls PROPERTIES C_STANDARD 11)
target_link_libraries(fleetrpc_tls PUBLIC mbedtls mbedx509 mbedcrypto)
threadfleet_warnings(fleetrpc_tls)

# ---- Tests: a real PKI from deploy/pki, real `openssl s_client` peers.
find_program(OPENSSL_EXECUTABLE openssl REQUIRED)
add_executable(tls_test ${CMAKE_CURRENT_SOURCE_DIR}/tls_test.cc)
target_link_libraries(tls_test PRIVATE fleetrpc_tls fleetrpc_os_socket GTest::gtest_main pthread)
target_compile_definitions(tls_test PRIVATE
  THREADFLEET_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  OPENSSL_EXECUTABLE="${OPENSSL_EXECUTABLE}")
threadfleet_warnings(tls_test)
gtest_discover_tests(tls_test
  DISCOVERY_MODE PRE_TEST
  TEST_PREFIX "tls."
  PROPERTIES TIMEOUT 60 LABELS "unit;firmware")
