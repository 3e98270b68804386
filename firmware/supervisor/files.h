// Files (and scripts) on the board's flash for host threads (the control channel, the
// fleetboard program): plain functions over MicroPython's VFS (littlefs
// mounted at "/"), so host threads and the board's Python programs see one
// file system. Each call enters the VM once through sup_vm_run; no
// MicroPython object outlives a call. This is the only way code outside
// firmware/runtime and firmware/supervisor reaches the VM's files.
//
// Example (a write that replaces /app/main.py only once it is complete):
//   char partial[SUP_FILE_PATH_MAX + 1];
//   sup_file_partial_name("/app/main.py", partial, sizeof partial);
//   int rc = sup_file_create(partial);               // parents made as needed
//   if (rc == 0) rc = sup_file_append(partial, data, n);
//   if (rc == 0) rc = sup_file_rename(partial, "/app/main.py");
//   if (rc != 0) sup_file_remove(partial);
//
// Results: every call returns 0 or a negative errno:
//   -ENOENT, -ENOTDIR, -EISDIR, -EEXIST, -ENOTEMPTY  as in POSIX;
//   -ENOSPC  the flash is full;
//   -ENOMEM  the VM's heap is full;
//   -EBUSY   the VM could not be entered (sup_vm_run failed: it stayed busy,
//            e.g. a thread is inside a long native operation); nothing done;
//   -EIO     anything else.
// Threading: any host thread that is not running Python code (see
// supervisor.h); calls from several threads are serialised by the VM.
#ifndef THREADFLEET_SUPERVISOR_FILES_H
#define THREADFLEET_SUPERVISOR_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Longest name of a directory entry reported by sup_file_list.
#define SUP_FILE_NAME_MAX 128

// Files being written are named "<path>" SUP_FILE_PARTIAL_MARK "<8 hex
// digits>" until they are complete. The mark is unlikely in a user's name,
// and a name carrying it is never a user's file: sup_file_remove_partials
// deletes every such file it finds.
#define SUP_FILE_PARTIAL_MARK ".tf-partial-"
#define SUP_FILE_PARTIAL_SUFFIX_LEN (sizeof(SUP_FILE_PARTIAL_MARK) - 1 + 8)
// Longest path these functions take: a control-channel path (board.options:
// 128 bytes) plus a partial suffix.
#define SUP_FILE_PATH_MAX (128 + SUP_FILE_PARTIAL_SUFFIX_LEN)

typedef struct {
  char name[SUP_FILE_NAME_MAX + 1];  // cut to SUP_FILE_NAME_MAX bytes
  bool is_dir;
  uint64_t size_bytes;  // 0 for directories
} sup_file_entry_t;

// What is at `path`: a directory, or a file of *size_bytes bytes.
int sup_file_stat(const char *path, bool *is_dir, uint64_t *size_bytes);

// Lists directory `dir`: the first `max` entries by name (strcmp order) into
// out, *count of them; *truncated tells whether there were more. -ENOTDIR
// when `dir` is a file.
int sup_file_list(const char *dir, sup_file_entry_t *out, size_t max, size_t *count, bool *truncated);

// Creates `path` empty (truncating an existing file), making its missing
// parent directories. -EEXIST or -ENOTDIR when a parent is a file.
int sup_file_create(const char *path);
// Appends len bytes to the file (which must exist); the file is closed and
// synced before this returns.
int sup_file_append(const char *path, const void *data, size_t len);
// Reads up to cap bytes from `offset`; *got is 0 at (or past) the end.
int sup_file_read(const char *path, uint64_t offset, void *buf, size_t cap, size_t *got);
// Renames, replacing an existing file at `to` atomically (littlefs).
int sup_file_rename(const char *from, const char *to);
// Removes a file, or an empty directory (-ENOTEMPTY otherwise).
int sup_file_remove(const char *path);
// The flash's capacity and the bytes in use.
int sup_file_usage(uint64_t *total_bytes, uint64_t *used_bytes);

// Writes to out a fresh partial name for `path` (see SUP_FILE_PARTIAL_MARK),
// unique within this process. -ENAMETOOLONG if it does not fit cap.
int sup_file_partial_name(const char *path, char *out, size_t cap);
// True if `name` (a path or one of its components) ends in a partial suffix.
bool sup_file_is_partial(const char *name);
// Walks the whole flash once and removes every partial file: the leftovers of
// writes that a crash or kill interrupted. Counts what it removed. Meant for
// boot, before anything writes (it would remove a write in progress too).
int sup_file_remove_partials(size_t *removed, uint64_t *removed_bytes);

// ---- Scripts

// Largest script the board loads from flash to run (StartProgram's path,
// /boot.py, /main.py): it is copied to the heap twice, once by the loader and
// once by the supervisor.
#define SUP_SCRIPT_MAX (64 * 1024)

// Reads a whole script into a malloc'd, NUL-terminated buffer (*source; the
// caller frees it) of *len bytes. Returns 0, -ENOENT, -EISDIR, -EFBIG (over
// SUP_SCRIPT_MAX), -ENOMEM or a flash error as above.
int sup_file_load_script(const char *path, char **source, size_t *len);

// Compiles a script (a file's content, or source sent inline) without running
// it. `name` is the file name tracebacks show. Returns 0; -EINVAL with
// "SyntaxError: ... (name, line N)" in message when it does not compile;
// -EBUSY with sup_vm_run's reason in message. A full heap is not the
// script's fault: it returns 0 and shows when the script runs.
int sup_file_check_syntax(const char *name, const char *source, size_t len, char *message, size_t cap);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_SUPERVISOR_FILES_H
