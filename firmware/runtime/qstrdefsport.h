// qstrs our port uses that the C sources' MP_QSTR_ names cannot spell.
// "/lib" is on sys.path (vm.c), as on the esp32 and rp2 ports.
// clang-format off
Q(/lib)
