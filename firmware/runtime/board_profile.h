// The real board a fleetboard simulates (`--profile esp32|rp2|generic`):
// what programs see of it (sys.platform, sys.implementation._machine,
// machine.freq(), the pins and ADC channels that exist) and the limits of
// its port (heap, threads, stacks). One profile per process, chosen before
// the VM starts.
#ifndef THREADFLEET_RUNTIME_BOARD_PROFILE_H
#define THREADFLEET_RUNTIME_BOARD_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  // The --profile value, also BoardInfo.profile: "esp32", "rp2", "generic".
  const char *name;
  // sys.platform, as the real port says it.
  const char *platform;
  // sys.implementation._machine / os.uname().machine.
  const char *machine;
  // Defaults of --heap, --max-threads and --max-stack (a flag still wins).
  // Stacks keep the host's floor (x86-64 frames are larger than Xtensa or
  // Cortex-M ones), so a real port's 4 KiB thread stack is not copied.
  size_t heap_bytes;
  uint32_t max_threads;
  size_t max_stack_bytes;
  // machine.freq() at start, in Hz.
  uint32_t freq_hz;
  // GPIO numbers 0..pin_count-1 exist (machine.Pin(n)).
  uint32_t pin_count;
  // The pin machine.Pin("LED") names; UINT32_MAX when the board has none.
  uint32_t led_pin;
  // ADC channels 0..adc_count-1 exist (machine.ADC(n) or ADC(Pin(n))).
  uint32_t adc_count;
  // Hardware timer ids 0..hw_timer_count-1 exist; id -1 is always a
  // virtual timer.
  uint32_t hw_timer_count;
  // Length of machine.unique_id() (an ESP32's MAC, an RP2040's flash id).
  uint32_t unique_id_bytes;
} board_profile_t;

// The profile called `name`; NULL for an unknown name.
const board_profile_t *board_profile_find(const char *name);

// The names board_profile_find accepts, for usage text: "esp32|rp2|generic".
const char *board_profile_names(void);

// The profile of this process: "generic" until board_profile_use() chose
// another. Call board_profile_use() before the VM starts.
const board_profile_t *board_profile_current(void);
void board_profile_use(const board_profile_t *profile);

#endif  // THREADFLEET_RUNTIME_BOARD_PROFILE_H
