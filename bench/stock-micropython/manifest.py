# Frozen manifest for the stock-MicroPython baseline: only asyncio.
# The standard unix variant's own manifest also pulls in micropython-lib
# packages (mip, ssl, unix-ffi), which the Debian "+ds" source tarball strips.
include("$(MPY_DIR)/extmod/asyncio")
