// Executable memory for the native and viper emitters (MP_PLAT_ALLOC_EXEC /
// MP_PLAT_FREE_EXEC in mpconfigport.h): page-aligned regions mapped
// read/write/execute, like the unix port's, and all unmapped when the VM
// ends (rt_exec_free_all), so a reset does not leak a board's code pages.
//
// Regions hold machine code only; the objects that code refers to are
// reachable from its function object on the GC heap, so the GC need not
// scan them. Called with the GIL held (the compiler and the .mpy loader run
// inside the VM).
#ifndef THREADFLEET_RUNTIME_EXEC_MEMORY_H
#define THREADFLEET_RUNTIME_EXEC_MEMORY_H

#include <stddef.h>

// At least `min_size` bytes of executable memory in *ptr (its usable size in
// *size); *ptr is NULL when the host refuses the mapping (the emitter then
// raises MemoryError).
void rt_exec_alloc(size_t min_size, void **ptr, size_t *size);
// Unmaps a region from rt_exec_alloc. `ptr` NULL is ignored.
void rt_exec_free(void *ptr, size_t size);
// Unmaps every region still mapped. REQUIRES: the VM has ended.
void rt_exec_free_all(void);

#endif  // THREADFLEET_RUNTIME_EXEC_MEMORY_H
