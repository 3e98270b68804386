// The thread supervisor: every MicroPython thread on the board, known,
// measured and killable, grouped into programs whose output is captured.
//
// Example:
//   sup_config_t cfg = sup_default_config();
//   sup_init(&cfg, &stack_marker);
//   uint32_t prog, main_tid;
//   char err[128];
//   sup_program_start(&(sup_program_spec_t){.name = "app.py", .source = src,
//                     .source_len = n}, &prog, &main_tid, err, sizeof err);
//   sup_thread_kill(main_tid + 1, 500);      // kill a thread it spawned
//   sup_program_wait(prog, -1);
//
// Threading: every function here may be called from any host thread that is
// not itself running Python code, unless stated otherwise. All state lives in
// fixed-size tables (MCU style); limits are in sup_config_t.
#ifndef THREADFLEET_SUPERVISOR_SUPERVISOR_H
#define THREADFLEET_SUPERVISOR_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SUP_NAME_MAX 32
#define SUP_PATH_MAX 128
#define SUP_EXC_MAX 256
#define SUP_TRACEBACK_MAX 1024
#define SUP_MAX_PROGRAMS 16
#define SUP_MAX_THREAD_RECORDS 128  // live threads plus the most recent ended
#define SUP_MAX_CYCLE 16
#define SUP_MAX_METRICS 32
// The longest kill grace the board accepts (fleetd caps it at the same).
#define SUP_KILL_GRACE_MAX_MS 10000
// A thread that holds the VM this long without passing a point where it can
// be interrupted (a bytecode branch) is "in native code": its
// sup_thread_info_t.native_us is set, and host threads stop waiting for the
// VM (sup_vm_run).
#define SUP_NATIVE_BUSY_MS 250
// The longest sup_vm_run waits for the VM whatever holds it.
#define SUP_VM_WAIT_MAX_MS 1000
// sup_config_t.max_stack_bytes by default: 4 x a thread's default stack, the
// scale of an ESP32's internal RAM (docs/architecture.md, "Threads").
#define SUP_DEFAULT_MAX_STACK (256 * 1024)
// The range --max-stack accepts: from a thread's default stack (64 KiB,
// rt_thread_default_stack) to 16 MiB.
#define SUP_MAX_STACK_LOWEST (64 * 1024)
#define SUP_MAX_STACK_HIGHEST (16 * 1024 * 1024)
// A program's main thread's stack (less when max_stack_bytes is smaller).
#define SUP_MAIN_THREAD_STACK (128 * 1024)

typedef enum {
  SUP_THREAD_RUNNING = 1,
  SUP_THREAD_SLEEPING,
  SUP_THREAD_WAITING_LOCK,
  SUP_THREAD_FINISHED,
  SUP_THREAD_FAILED,
  SUP_THREAD_KILLED,
} sup_thread_state_t;

typedef enum {
  SUP_PROGRAM_RUNNING = 1,
  SUP_PROGRAM_FINISHED,
  SUP_PROGRAM_FAILED,
  SUP_PROGRAM_KILLED,
} sup_program_state_t;

typedef struct {
  const char *board_name;
  size_t heap_bytes;           // MicroPython GC heap
  size_t max_threads;          // live user threads, at most RT_MAX_THREADS - 4
  size_t output_buffer_bytes;  // per program ring buffer
  // Largest stack a thread may have, bytes (a program's main thread gets
  // min(128 KiB, this)). Stacks are committed whole (painted for the
  // high-water mark), so the board's stack memory is at most
  // max_threads * max_stack_bytes. SUP_MAX_STACK_LOWEST..SUP_MAX_STACK_HIGHEST.
  size_t max_stack_bytes;
  int64_t stall_after_ms;  // a lock wait longer than this is a stall
  int64_t kill_grace_ms;   // default grace before a kill escalates
  // Compile programs to machine code (`fleetboard run -X emit=native`).
  bool emit_native;
  // Called on the VM host thread, inside the VM, after every (re)start of the
  // VM: mount flash and the like. May be NULL.
  void (*on_vm_start)(void *ctx);
  void *on_vm_start_ctx;
  // Boot as a board does (`fleetboard serve`): at every VM start that
  // sup_host_serve sees (its first, and after each reset), start /boot.py,
  // then /main.py once boot.py has ended, each as a program named after its
  // file (see "Boot" below).
  bool boot_scripts;
} sup_config_t;

sup_config_t sup_default_config(void);

// Starts the VM and the supervisor's monitor. `stack_top`: an address near the
// top of the calling thread's stack (it becomes the VM host thread).
// Returns false with a message on stderr if the heap cannot be had.
bool sup_init(const sup_config_t *config, void *stack_top);
// Kills everything and stops the VM. Returns 0, or the number of threads
// that could not be killed (stuck in native code, they hold the VM): then
// the VM and the supervisor are left as they are, for the process to end
// (fleetboard exits, or restarts itself), and sup_init must not be called
// again. REQUIRES: called on the VM host thread.
int sup_deinit(void);
// Soft reset, like Ctrl-D on a board: kills every thread (soft, then hard),
// restarts the VM with a fresh heap; files on flash are kept.
// REQUIRES: called on the VM host thread. Returns 0, or the number of threads
// that could not be killed (stuck in native code): then the VM is left as it
// is, and only restarting the board brings it back (sup_host_serve).
int sup_reset(void);

// ---- Host threads inside the VM ----------------------------------------------

// Runs fn(ctx) inside the VM on the calling host thread (a thread of the
// control channel, say): it takes the GIL and a VM thread state of its own for
// the duration, so fn may use MicroPython's C API (files on flash, objects).
// fn must not block for long: Python threads wait while it runs. With no
// program running, a heap left less than a quarter free is collected after
// fn (control calls' garbage must not look like a full heap).
// Never waits long for the VM: gives up at once while sup_vm_busy() says so,
// and waits at most SUP_VM_WAIT_MAX_MS in any case. Returns true when fn
// ran to its end. False with the reason in err: an exception escaped fn
// (its text; errno 0), or fn never ran because the VM was busy (errno
// EBUSY; "the VM is busy: thread 7 (match) has been in native code for
// 12.0 s"). Callers turn EBUSY into UNAVAILABLE.
bool sup_vm_run(void (*fn)(void *ctx), void *ctx, char *err, size_t err_len);
// True, with the reason in why (may be NULL), while a program's thread has
// held the VM for SUP_NATIVE_BUSY_MS or more without passing a point where
// it can be interrupted: "the VM is busy: thread 7 (match) has been in
// native code for 12.0 s". Threads, kills and health do not need the VM;
// only calls that run Python's C API (files, compiling) wait for it.
bool sup_vm_busy(char *why, size_t why_len);
// Releases the calling host thread's VM registration (before it exits).
void sup_vm_detach(void);

// Serves work that must run on the VM host thread (soft reset) until *stop
// becomes non-zero: returns 0. When a reset could not end every thread
// (stuck in native code), returns SUP_HOST_HARD_RESET once the reset's
// requester has collected the result (sup_reset_finished or
// sup_reset_request; 2 s at most): the caller must then restart the board,
// as a watchdog would (fleetboard serve re-executes itself; sup_deinit
// must not be called). REQUIRES: called on the VM host thread.
#define SUP_HOST_HARD_RESET 1
int sup_host_serve(volatile int *stop);
// From any thread: has the VM host thread (in sup_host_serve) soft-reset the
// board and returns sup_reset's result (> 0: the board restarts instead), or
// -ETIMEDOUT.
int sup_reset_request(int64_t timeout_ms);
// The same without waiting: sup_reset_begin asks for a reset and returns a
// ticket; sup_reset_finished tells whether that reset is done, with
// sup_reset's result (> 0: the board restarts once this was told).
// safe_boot: the fresh VM skips /boot.py and /main.py this once (a board's
// safe-boot button; carried through a hard reset).
uint64_t sup_reset_begin(bool safe_boot);
bool sup_reset_finished(uint64_t ticket, int *result);
// Whether a VM host thread serves resets (is in sup_host_serve): `fleetboard
// serve` does, `fleetboard run` does not, so a program's machine.reset()
// there ends the program instead.
bool sup_resets_served(void);

// ---- Boot ----------------------------------------------------------------------
//
// With sup_config_t.boot_scripts, the VM host thread (in sup_host_serve) boots
// the board at every VM start, as MicroPython's ports do after a reset: it
// starts /boot.py, and /main.py once boot.py has ended (or at once when there
// is none), each as a program ("boot.py", "main.py") the lab sees and can
// kill. It never waits for them, so resets stay served. Each boot raises
// SUP_EVENT_BOOT saying what started or why nothing did.
//
// A boot loop (a main.py that resets the board at once) is cut short: a boot
// within SUP_BOOT_LOOP_WINDOW_MS of the SUP_BOOT_LOOP_BOOTS-th boot before it
// runs neither script, until a reset the lab asks for (sup_reset_begin).
#define SUP_BOOT_LOOP_BOOTS 5
#define SUP_BOOT_LOOP_WINDOW_MS 10000
// What a hard reset (the process restarting itself) keeps of the boot state,
// as a board's RTC memory survives its reset: the recent boot times of the
// loop guard and a safe boot asked for. sup_boot_memory_save writes it as a
// short text (at most SUP_BOOT_MEMORY_MAX bytes with its NUL; returns false if
// cap is smaller); sup_boot_memory_restore takes it back before
// sup_host_serve (NULL or malformed text: nothing restored, false).
// REQUIRES: called on the VM host thread.
#define SUP_BOOT_MEMORY_MAX 160
bool sup_boot_memory_save(char *out, size_t cap);
bool sup_boot_memory_restore(const char *text);

// ---- Programs ----------------------------------------------------------------

typedef struct {
  const char *name;    // file name shown in tracebacks, e.g. "app.py"
  const char *source;  // Python source text
  size_t source_len;
  const char *const *argv;  // sys.argv (argv[0] is usually the name); may be NULL
  size_t argc;
} sup_program_spec_t;

typedef struct {
  uint32_t id;
  char name[SUP_PATH_MAX];
  sup_program_state_t state;
  uint32_t main_thread_id;
  uint32_t threads_started;
  uint32_t threads_live;
  int64_t start_us, end_us;  // board uptime
  uint64_t output_bytes;     // ever written (the ring keeps the newest)
  int exit_code;             // 0, SystemExit's code, 1 after an exception
} sup_program_info_t;

// Starts a program: compiles and runs `spec->source` on a new main thread.
// Returns 0, or -EAGAIN (thread limit) / -ENOMEM / -ENOSPC (program table
// full of running programs) with a message in err.
int sup_program_start(const sup_program_spec_t *spec, uint32_t *program_id, uint32_t *main_thread_id,
                      char *err, size_t err_len);
// Waits until the program has ended (all its threads). timeout_ms < 0: no
// limit. Returns 0, -ETIMEDOUT or -ENOENT.
int sup_program_wait(uint32_t program_id, int64_t timeout_ms);
// Kills every thread of a program, as sup_thread_kill. Returns 0, -ENOENT or
// -EINVAL (grace_ms over SUP_KILL_GRACE_MAX_MS).
int sup_program_kill(uint32_t program_id, int64_t grace_ms);
bool sup_program_get(uint32_t program_id, sup_program_info_t *out);
// The program of the calling VM thread; 0 for a host thread.
uint32_t sup_current_program(void);
size_t sup_programs_list(sup_program_info_t *out, size_t max);
// The program the calling VM thread belongs to; 0 for a thread of none (the
// board's own). REQUIRES: called on a VM thread, sched lock not held.
uint32_t sup_current_program(void);

// ---- Threads -------------------------------------------------------------------

typedef struct {
  uint32_t id;
  uint32_t program_id;
  char name[SUP_NAME_MAX];
  sup_thread_state_t state;
  bool unkillable;  // still alive after a kill's hard phase
  bool deadlocked;  // part of a lock wait-for cycle
  int64_t start_us, end_us;
  int64_t cpu_us;
  uint32_t stack_size, stack_used, stack_peak;  // bytes
  uint32_t waiting_lock_id;                     // 0: not waiting
  int64_t wait_us;                              // in the current block
  // How long it has held the VM inside one native operation, once that is
  // SUP_NATIVE_BUSY_MS or more, or the thread is unkillable (0 otherwise): a
  // kill lands only once it comes back (it is reported unkillable at the end
  // of the kill's grace).
  int64_t native_us;
  char exception[SUP_EXC_MAX];  // "ValueError: bad" or ""
  char traceback[SUP_TRACEBACK_MAX];
  uint64_t output_bytes;
} sup_thread_info_t;

// Copies live threads and, with include_ended, remembered ended ones, oldest
// id first. program_id 0: all programs. Returns how many were written.
size_t sup_threads_list(sup_thread_info_t *out, size_t max, uint32_t program_id, bool include_ended);
bool sup_thread_get(uint32_t thread_id, sup_thread_info_t *out);

// Kills one thread: fleet.ThreadKilled is raised in it (a BaseException, so
// `except Exception:` does not catch it) and it is woken from any sleep or
// lock wait. After grace_ms (<0: the configured default) a thread still alive
// is unwound without running its handlers; after another grace_ms it is
// reported unkillable. A kill of a thread already being killed with a shorter
// grace brings the next step closer (a longer one changes nothing). Returns
// 0, -ENOENT (no such thread), -ESRCH (already ended; nothing to do) or
// -EINVAL (grace_ms over SUP_KILL_GRACE_MAX_MS).
int sup_thread_kill(uint32_t thread_id, int64_t grace_ms);

// ---- Events --------------------------------------------------------------------

typedef enum {
  SUP_EVENT_THREAD_STARTED = 1,
  SUP_EVENT_THREAD_ENDED,
  SUP_EVENT_THREAD_FAILED,
  SUP_EVENT_THREAD_KILLED,
  SUP_EVENT_THREAD_UNKILLABLE,
  SUP_EVENT_DEADLOCK,
  SUP_EVENT_STALL,
  SUP_EVENT_PROGRAM_ENDED,
  SUP_EVENT_RESET,
  // The VM restarted because a program's machine.WDT was not fed, or it
  // called machine.reset()/soft_reset()/deepsleep() (firmware/machine/).
  SUP_EVENT_WATCHDOG_RESET,
  SUP_EVENT_MACHINE_RESET,
  // The board booted: /boot.py or /main.py started (program_id), or neither
  // ran (a safe boot, a boot loop, a script that could not be loaded).
  SUP_EVENT_BOOT,
} sup_event_kind_t;

typedef struct {
  uint64_t seq;  // 1, 2, ... for the board's uptime
  int64_t time_us;
  sup_event_kind_t kind;
  uint32_t thread_id, program_id;
  char message[128];
  uint32_t cycle[SUP_MAX_CYCLE];  // deadlock: the threads in the cycle
  uint32_t cycle_len;
} sup_event_t;

// Copies events with seq > after_seq, oldest first, waiting up to timeout_ms
// for the first one (0: do not wait). Returns how many were written.
size_t sup_events_read(uint64_t after_seq, sup_event_t *out, size_t max, int64_t timeout_ms);

// ---- Output --------------------------------------------------------------------

typedef struct {
  uint64_t offset;  // position of data[0] in the program's output stream
  uint32_t thread_id;
  uint8_t stream;  // 1 stdout, 2 stderr
  const char *data;
  size_t len;
} sup_output_chunk_t;

// Copies a program's captured output from `offset` (older bytes may have been
// dropped: *first_kept says where the ring starts) into buf, described by
// chunks. Returns the number of chunks, or -ENOENT.
int sup_output_read(uint32_t program_id, uint64_t offset, sup_output_chunk_t *chunks, size_t max_chunks,
                    char *buf, size_t buf_len, uint64_t *first_kept);

// Receives every byte of program output as it is produced (e.g. to echo it).
// Called on the producing thread with the GIL held: must not block.
typedef void (*sup_output_observer_t)(uint32_t program_id, uint32_t thread_id, int stream, const char *data,
                                      size_t len, void *ctx);
void sup_set_output_observer(sup_output_observer_t fn, void *ctx);

// ---- Health --------------------------------------------------------------------

typedef struct {
  char key[SUP_NAME_MAX];
  uint32_t thread_id;
  double value;
} sup_metric_t;

typedef struct {
  int64_t uptime_us;
  size_t heap_total, heap_used, heap_free, heap_largest_free;
  uint32_t threads_by_state[SUP_THREAD_KILLED + 1];  // indexed by sup_thread_state_t
  uint32_t live_threads, max_threads;
  uint32_t unkillable_threads;
  uint32_t deadlocked_threads, stalled_threads;
  int64_t process_cpu_us;
  sup_metric_t metrics[SUP_MAX_METRICS];
  size_t metric_count;
} sup_health_t;

// Takes a health snapshot without waiting for the VM. The heap figures are
// read at once when the VM is free (the GIL taken without waiting, for a few
// microseconds); when a thread holds it they are the ones the holder read at
// its next yield point or when it let the VM go after the previous snapshot
// asked (Python code yields every 32 branches), and while a thread is stuck
// in native code they are those from before it stopped yielding.
void sup_health(sup_health_t *out);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_SUPERVISOR_SUPERVISOR_H
