# Where the stock MicroPython unix port (the baseline of the benchmarks and of
# tests/thread-suite; built by bench/stock-micropython, target
# stock_micropython) lives: in the build cache beside the fetched source, in a
# directory keyed by the source tree and the files that decide the build, so
# every build tree on the machine shares one build.
if(DEFINED ENV{THREADFLEET_CACHE})
  set(_stock_cache "$ENV{THREADFLEET_CACHE}")
else()
  set(_stock_cache "$ENV{HOME}/.cache/threadfleet")
endif()
file(SHA256 ${PROJECT_SOURCE_DIR}/bench/stock-micropython/build.sh _stock_script)
file(SHA256 ${PROJECT_SOURCE_DIR}/bench/stock-micropython/manifest.py _stock_manifest)
string(SHA256 _stock_key "${MICROPYTHON_DIR}|${_stock_script}|${_stock_manifest}")
string(SUBSTRING "${_stock_key}" 0 16 _stock_key)
set(STOCK_MICROPYTHON_DIR "${_stock_cache}/stock-micropython-${_stock_key}")
set(STOCK_MICROPYTHON "${STOCK_MICROPYTHON_DIR}/micropython")
# mpy-cross, built from the same source by the same script (build.sh builds it
# first, as the unix port's frozen asyncio needs it): it compiles the board's
# frozen modules and the .mpy files tests and examples/ put on flash. Target
# `mpy_cross` (bench/stock-micropython) builds it.
set(MPY_CROSS "${STOCK_MICROPYTHON_DIR}/src/mpy-cross/build/mpy-cross")
