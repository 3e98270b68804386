// The board's flash: a block device backed by an image file, formatted as
// littlefs v2 and mounted at "/" as MicroPython's VfsLfs2. On a real MCU only
// lfsdev.c changes (to the flash driver); the VFS side stays.
#ifndef THREADFLEET_STORAGE_LFSDEV_H
#define THREADFLEET_STORAGE_LFSDEV_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LFSDEV_BLOCK_SIZE 4096
#define LFSDEV_DEFAULT_BYTES (1024 * 1024)

// Opens (creating if absent) the flash image at `path`, sized `bytes` when new
// (an existing image keeps its size). path NULL: an anonymous image that
// vanishes with the process. Returns false with a message in err.
bool lfsdev_open(const char *path, size_t bytes, char *err, size_t err_len);
void lfsdev_close(void);
size_t lfsdev_size(void);

// Mounts the flash at "/" (formatting a blank image first) and makes "/" the
// current directory. REQUIRES: inside the VM. Returns false with a message.
bool lfsdev_mount(char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_STORAGE_LFSDEV_H
