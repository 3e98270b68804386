// The profiles of the boards fleetboard simulates; see board_profile.h.
#include "firmware/runtime/board_profile.h"

#include <string.h>

// Heaps are what MicroPython 1.25's own port leaves to the GC on the
// board's common module (ESP32-WROOM without PSRAM ~110 KiB, RP2040 ~190
// KiB). The RP2040 runs one extra thread, on its second core.
static const board_profile_t PROFILES[] = {
    {.name = "generic",
     .platform = "threadfleet",
     .machine = "threadfleet simulated board with host",
     .heap_bytes = 256 * 1024,
     .max_threads = 16,
     .max_stack_bytes = 256 * 1024,
     .freq_hz = 100000000,
     .pin_count = 64,
     .led_pin = 2,
     .adc_count = 8,
     .hw_timer_count = 4,
     .unique_id_bytes = 8},
    {.name = "esp32",
     .platform = "esp32",
     .machine = "Generic ESP32 module with ESP32",
     .heap_bytes = 110 * 1024,
     .max_threads = 16,
     .max_stack_bytes = 256 * 1024,
     .freq_hz = 160000000,
     .pin_count = 40,
     .led_pin = 2,
     .adc_count = 8,
     .hw_timer_count = 4,
     .unique_id_bytes = 6},
    {.name = "rp2",
     .platform = "rp2",
     .machine = "Raspberry Pi Pico with RP2040",
     .heap_bytes = 190 * 1024,
     .max_threads = 2,
     .max_stack_bytes = 256 * 1024,
     .freq_hz = 125000000,
     .pin_count = 30,
     .led_pin = 25,
     .adc_count = 4,
     .hw_timer_count = 0,
     .unique_id_bytes = 8},
};

static const board_profile_t *current = &PROFILES[0];

const board_profile_t *board_profile_find(const char *name) {
  for (size_t i = 0; i < sizeof(PROFILES) / sizeof(PROFILES[0]); i++) {
    if (strcmp(PROFILES[i].name, name) == 0) return &PROFILES[i];
  }
  return NULL;
}

const char *board_profile_names(void) { return "esp32|rp2|generic"; }

const board_profile_t *board_profile_current(void) { return current; }

void board_profile_use(const board_profile_t *profile) { current = profile; }
