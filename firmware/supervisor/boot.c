// The board's boot sequence, as MicroPython's ports run it after every reset
// (ports/esp32 and ports/rp2 main.c: boot.py, then main.py): here each script
// is a program the lab sees, and the VM host thread only starts them, so it
// goes on serving resets while they run. See supervisor.h, "Boot".
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/supervisor/files.h"
#include "firmware/supervisor/internal.h"

#define BOOT_PY "/boot.py"
#define MAIN_PY "/main.py"

// The VM host thread's alone, but for safe_next (sched lock).
static struct {
  bool boot_py_running;  // main.py waits for boot_py_program to end
  uint32_t boot_py_program;
  bool safe_next;
  // Monotonic times of the newest boots that ran the scripts, oldest first.
  int64_t recent_ns[SUP_BOOT_LOOP_BOOTS];
  size_t recent_count;
} boot;

static void boot_event(uint32_t program_id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void boot_event(uint32_t program_id, const char *fmt, ...) {
  char message[sizeof(((sup_event_t *)0)->message)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof(message), fmt, ap);
  va_end(ap);
  rt_sched_lock();
  sup_event_emit(SUP_EVENT_BOOT, 0, program_id, NULL, 0, "%s", message);
  rt_sched_unlock();
}

// Starts a script from flash as a program named after its file. Returns its
// id, or 0 when there is no such file (nothing said: a board without main.py
// is normal) or it could not start (said in an event).
static uint32_t start_script(const char *path) {
  char *source = NULL;
  size_t len = 0;
  int rc = sup_file_load_script(path, &source, &len);
  if (rc == -ENOENT || rc == -EISDIR) return 0;
  if (rc != 0) {
    const char *why = rc == -EFBIG ? "larger than the board's script limit" : strerror(-rc);
    boot_event(0, "boot: %s not run: %s", path, why);
    return 0;
  }
  const char *name = path + 1;  // "main.py", as a board's tracebacks say
  const char *argv[] = {name};
  sup_program_spec_t spec = {.name = name, .source = source, .source_len = len, .argv = argv, .argc = 1};
  uint32_t program_id = 0, thread_id = 0;
  char err[128];
  rc = sup_program_start(&spec, &program_id, &thread_id, err, sizeof(err));
  free(source);
  if (rc != 0) {
    boot_event(0, "boot: %s not run: %s", path, err);
    return 0;
  }
  boot_event(program_id, "boot: %s started as program %" PRIu32, path, program_id);
  return program_id;
}

// Records a boot at now_ns; false (nothing recorded) when it is a boot loop:
// the SUP_BOOT_LOOP_BOOTS-th boot before it was within the window.
static bool boot_loop_admit(int64_t now_ns) {
  if (boot.recent_count == SUP_BOOT_LOOP_BOOTS) {
    if (now_ns - boot.recent_ns[0] < (int64_t)SUP_BOOT_LOOP_WINDOW_MS * 1000000) return false;
    memmove(&boot.recent_ns[0], &boot.recent_ns[1], (SUP_BOOT_LOOP_BOOTS - 1) * sizeof(boot.recent_ns[0]));
    boot.recent_count--;
  }
  boot.recent_ns[boot.recent_count++] = now_ns;
  return true;
}

void sup_boot_ask_safe(void) { boot.safe_next = true; }

void sup_boot_begin(bool by_lab) {
  boot.boot_py_running = false;
  if (!sup.config.boot_scripts) return;
  rt_sched_lock();
  bool safe = boot.safe_next;
  boot.safe_next = false;
  rt_sched_unlock();
  // The lab's reset is the way out of a boot loop: the guard starts afresh.
  if (by_lab) boot.recent_count = 0;
  if (safe) {
    boot_event(0, "boot: safe boot, %s and %s not run", BOOT_PY, MAIN_PY);
    return;
  }
  int64_t now = rt_now_ns();
  if (!boot_loop_admit(now)) {
    boot_event(0, "boot loop: %d boots in %.1f s; %s and %s not run until the lab resets the board",
               SUP_BOOT_LOOP_BOOTS + 1, (double)(now - boot.recent_ns[0]) / 1e9, BOOT_PY, MAIN_PY);
    return;
  }
  boot.boot_py_program = start_script(BOOT_PY);
  if (boot.boot_py_program != 0)
    boot.boot_py_running = true;
  else
    start_script(MAIN_PY);
}

bool sup_boot_pending(void) { return boot.boot_py_running; }

void sup_boot_advance(void) {
  if (!boot.boot_py_running) return;
  sup_program_info_t info;
  if (sup_program_get(boot.boot_py_program, &info) && info.state == SUP_PROGRAM_RUNNING) return;
  boot.boot_py_running = false;
  start_script(MAIN_PY);
}

// ---- What a hard reset keeps ----------------------------------------------------------------

bool sup_boot_memory_save(char *out, size_t cap) {
  if (cap < SUP_BOOT_MEMORY_MAX) return false;
  rt_sched_lock();
  bool safe = boot.safe_next;
  rt_sched_unlock();
  int n = snprintf(out, cap, "safe=%d boots=", safe ? 1 : 0);
  for (size_t i = 0; i < boot.recent_count; i++)
    n += snprintf(out + n, cap - (size_t)n, "%s%" PRId64, i ? "," : "", boot.recent_ns[i]);
  return true;
}

bool sup_boot_memory_restore(const char *text) {
  if (!text) return false;
  int safe = 0, used = 0;
  if (sscanf(text, "safe=%d boots=%n", &safe, &used) != 1 || used == 0 || (safe != 0 && safe != 1))
    return false;
  int64_t times[SUP_BOOT_LOOP_BOOTS];
  size_t count = 0;
  const char *p = text + used;
  while (*p && count < SUP_BOOT_LOOP_BOOTS) {
    char *end = NULL;
    errno = 0;
    long long t = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE || t < 0 || (*end != ',' && *end != '\0')) return false;
    times[count++] = (int64_t)t;
    p = *end == ',' ? end + 1 : end;
  }
  if (*p) return false;
  memcpy(boot.recent_ns, times, count * sizeof(times[0]));
  boot.recent_count = count;
  rt_sched_lock();
  boot.safe_next = safe == 1;
  rt_sched_unlock();
  return true;
}
