// Executable memory for emitted machine code (see exec_memory.h).
#include "firmware/runtime/exec_memory.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

// Every region starts with this header, so the regions form a list without
// any allocation of their own; the code follows it, 16-byte aligned.
typedef struct exec_region {
  struct exec_region *next;
  size_t mapped_bytes;
} exec_region_t;

#define EXEC_HEADER_BYTES 16
_Static_assert(sizeof(exec_region_t) <= EXEC_HEADER_BYTES, "exec header fits its slot");

// Mapped regions, newest first; the GIL serialises every change.
static exec_region_t *regions;

void rt_exec_alloc(size_t min_size, void **ptr, size_t *size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t mapped = (min_size + EXEC_HEADER_BYTES + page - 1) / page * page;
  void *base = mmap(NULL, mapped, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    *ptr = NULL;
    *size = 0;
    return;
  }
  exec_region_t *region = base;
  region->next = regions;
  region->mapped_bytes = mapped;
  regions = region;
  *ptr = (uint8_t *)base + EXEC_HEADER_BYTES;
  *size = mapped - EXEC_HEADER_BYTES;
}

void rt_exec_free(void *ptr, size_t size) {
  (void)size;
  if (!ptr) return;
  exec_region_t *target = (exec_region_t *)((uint8_t *)ptr - EXEC_HEADER_BYTES);
  for (exec_region_t **link = &regions; *link; link = &(*link)->next) {
    if (*link == target) {
      *link = target->next;
      munmap(target, target->mapped_bytes);
      return;
    }
  }
}

void rt_exec_free_all(void) {
  while (regions) {
    exec_region_t *next = regions->next;
    munmap(regions, regions->mapped_bytes);
    regions = next;
  }
}
