# The modules frozen into every fleetboard, as into every official MicroPython
# board image: asyncio's Python half (its C half is extmod/modasyncio.c), from
# the fetched MicroPython source itself, never a copy in this repository.
include("$(MPY_DIR)/extmod/asyncio")
