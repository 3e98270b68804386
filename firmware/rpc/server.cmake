# The control channel's listener: lwIP accept loop -> TLS -> HTTP/2 gRPC.
add_library(fleetrpc_server STATIC
    ${CMAKE_CURRENT_SOURCE_DIR}/server.c
    ${CMAKE_CURRENT_SOURCE_DIR}/lwip_transport.c)
target_include_directories(fleetrpc_server PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fleetrpc_server PUBLIC fleetnet fleetrpc_tls fleetrpc_h2 fleetrpc_service fleetvm)
threadfleet_warnings(fleetrpc_server)
