// The seam between the simulated hardware (machine_state.c, no MicroPython
// inside) and the `machine` module's objects (modmachine.c): the handlers to
// schedule live in the VM's root pointers, which only the module touches.
#ifndef THREADFLEET_MACHINE_MACHINE_SCHEDULE_H
#define THREADFLEET_MACHINE_MACHINE_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

// Queues the IRQ handler of `pin` (or the callback of timer `slot`) with
// micropython.schedule, its object as the argument. Returns false when there
// is no handler or the scheduler's queue is full (the interrupt is lost, as
// on a port). Callable from any thread. REQUIRES: the machine mutex held and
// the VM up (machine_state.c's vm_up), so the objects exist.
bool machine_schedule_pin(uint32_t pin);
bool machine_schedule_timer(int slot);
// Drops every handler and timer object (the VM goes away or was replaced).
// REQUIRES: the machine mutex held, no Python thread alive.
void machine_forget_objects(void);

#endif  // THREADFLEET_MACHINE_MACHINE_SCHEDULE_H
