// The MicroPython VM's lifecycle on a board: one VM per process, started on
// a host thread that then only enters it to do board work (mount flash,
// snapshot the heap). Python code runs on supervised threads.
#ifndef THREADFLEET_RUNTIME_VM_H
#define THREADFLEET_RUNTIME_VM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  size_t heap_bytes;  // the GC heap, like a board's RAM for Python
  // Compile every function to machine code, as if each were decorated with
  // @micropython.native (MicroPython's `-X emit=native`).
  bool emit_native;
} rt_vm_config_t;

typedef struct {
  size_t total, used, free, largest_free;  // bytes
} rt_heap_stats_t;

// Starts the VM on the calling host thread, as the board's profile
// (board_profile_current) says it is: sys.platform and the rest of its
// identity (board_identity.h), sys.path ['', '.frozen', '/lib'] as on the
// esp32 and rp2 ports. `stack_top` is an address near the
// top of the caller's stack. Returns false if the heap cannot be allocated.
// On return the caller does not hold the GIL.
bool rt_vm_init(const rt_vm_config_t *config, void *stack_top);
// Tears the VM down. REQUIRES: no supervised thread alive; caller is the
// thread that called rt_vm_init.
void rt_vm_deinit(void);

// Enter/leave the VM from a registered host thread (takes/releases the GIL).
void rt_vm_enter(void);
void rt_vm_leave(void);

// Puts `dir` first on sys.path (`fleetboard run`'s script directory, as the
// unix port does). REQUIRES: inside the VM (GIL held); may raise.
void rt_vm_path_prepend(const char *dir);

// Heap figures, the same as gc_info's (total, used, free, max_free) at a
// fraction of its cost. REQUIRES: inside the VM (GIL held).
void rt_vm_heap_stats(rt_heap_stats_t *out);
size_t rt_vm_heap_size(void);

#endif  // THREADFLEET_RUNTIME_VM_H
