// The board's flash file system as the control channel uses it: plain
// functions over MicroPython's VFS (littlefs mounted at "/"), entered from a
// host thread through sup_vm_run. No protobuf here.
//
// Every fallible call returns 0 or a negative errno: -ENOENT, -ENOTDIR,
// -EISDIR, -EEXIST, -ENOTEMPTY, -ENOSPC (flash full), -ENOMEM (VM heap
// full), -EBUSY (the VM is busy, see sup_vm_busy: nothing was done), -EIO
// (anything else).
//
// Example:
//   board_flash_create("/app/main.py.tmp");          // parents made as needed
//   board_flash_append("/app/main.py.tmp", data, n);
//   board_flash_rename("/app/main.py.tmp", "/app/main.py");
#ifndef THREADFLEET_RPC_CONTROL_BOARD_FLASH_H
#define THREADFLEET_RPC_CONTROL_BOARD_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Longest path the board accepts (board.options' path limit), plus room for
// the ".tmp" suffix of a file being written.
#define BOARD_FLASH_PATH_MAX 128
#define BOARD_FLASH_TMP_SUFFIX ".tmp"
#define BOARD_FLASH_NAME_MAX 128

// True for an absolute path ("/a/b") without empty, "." or ".." components
// and without a trailing "/"; "/" itself only when allow_root.
bool board_flash_path_ok(const char *path, bool allow_root);

typedef struct {
  char name[BOARD_FLASH_NAME_MAX + 1];
  bool is_dir;
  uint64_t size_bytes;  // 0 for directories
} board_flash_entry_t;

int board_flash_stat(const char *path, bool *is_dir, uint64_t *size_bytes);

// Lists directory `dir`: the first `max` entries by name, sorted, into out.
// *truncated tells whether there were more.
int board_flash_list(const char *dir, board_flash_entry_t *out, size_t max, size_t *count, bool *truncated);

// Creates (or truncates) a file, making its missing parent directories.
int board_flash_create(const char *path);
int board_flash_append(const char *path, const void *data, size_t len);
// Reads up to cap bytes at offset; *got is 0 at the end of the file.
int board_flash_read(const char *path, uint64_t offset, void *buf, size_t cap, size_t *got);
// Renames, replacing an existing file at `to` atomically.
int board_flash_rename(const char *from, const char *to);
// Removes a file or an empty directory.
int board_flash_remove(const char *path);
// Capacity and space in use.
int board_flash_usage(uint64_t *total_bytes, uint64_t *used_bytes);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_CONTROL_BOARD_FLASH_H
