// Supervisor internals shared by its files. Everything here is guarded by the
// port's sched lock (rt_sched_lock) unless a comment says otherwise.
#ifndef THREADFLEET_SUPERVISOR_INTERNAL_H
#define THREADFLEET_SUPERVISOR_INTERNAL_H

#include "firmware/runtime/mpthreadport.h"
#include "firmware/runtime/vm.h"
#include "firmware/supervisor/supervisor.h"
#include "py/obj.h"

typedef enum { SUP_KILL_NONE = 0, SUP_KILL_SOFT, SUP_KILL_HARD, SUP_KILL_GAVE_UP } sup_kill_phase_t;

typedef struct {
  bool in_use;
  uint32_t id, program_id;
  char name[SUP_NAME_MAX];
  rt_thread_t *rt;  // live: the port's record; NULL once ended
  sup_thread_state_t end_state;
  int64_t start_ns, end_ns;
  int64_t cpu_us_final;
  size_t stack_size, stack_peak_final;
  sup_kill_phase_t kill_phase;
  int64_t kill_requested_ns;  // the first request of the kill under way
  int64_t kill_deadline_ns, kill_grace_ns;
  bool unkillable;
  int64_t stall_reported_for;  // block_since of the wait already reported
  char exception[SUP_EXC_MAX];
  char traceback[SUP_TRACEBACK_MAX];
  uint64_t output_bytes;
} sup_thread_t;

typedef struct {
  uint64_t offset;  // stream position of the chunk's first byte
  uint32_t len;
  uint32_t thread_id;
  uint8_t stream;
} sup_chunk_t;

#define SUP_OUTPUT_CHUNKS 1024

typedef struct {
  bool in_use;
  sup_program_info_t info;
  sup_thread_state_t main_outcome;  // how its main thread ended
  bool killing;                     // a kill covers threads it starts later too
  // _thread.stack_size() as this program set it (0: the port's default), so
  // one program's setting never reaches another.
  size_t thread_stack_bytes;
  // Output ring: bytes [written - kept, written) are in data.
  char *data;
  size_t capacity;
  uint64_t written;
  sup_chunk_t chunks[SUP_OUTPUT_CHUNKS];  // ring of chunk descriptors
  uint64_t chunk_head;                    // chunks ever added
} sup_program_t;

typedef struct {
  sup_config_t config;
  int64_t boot_ns;
  sup_thread_t threads[SUP_MAX_THREAD_RECORDS];
  sup_program_t programs[SUP_MAX_PROGRAMS];
  uint32_t next_program_id;
  pthread_cond_t changed;  // broadcast on thread/program end and new events
  sup_output_observer_t observer;
  void *observer_ctx;
  sup_metric_t metrics[SUP_MAX_METRICS];
  size_t metric_count;
  bool killing_all;  // reset/shutdown: every thread, even new ones, is killed
  // The heap figures as last read by a holder of the GIL (see sup_health).
  rt_heap_stats_t heap;
  // The VM exists (false while a reset or shutdown tears it down and builds
  // a new one). Written and read with the GIL held: a host thread that got
  // the GIL checks it before touching the VM.
  bool vm_up;
} sup_state_t;

extern sup_state_t sup;

int64_t sup_uptime_us(int64_t mono_ns);

// registry.c
sup_thread_t *sup_thread_rec(uint32_t id);
sup_thread_t *sup_thread_of(const rt_thread_t *rt);
sup_thread_t *sup_thread_begin(rt_thread_t *rt, uint32_t program_id, const char *name);
void sup_thread_end(sup_thread_t *t, sup_thread_state_t state);
// Everything known about a thread (a live one's CPU time and stack peak read
// now; now_ns is the caller's rt_now_ns, for wait times).
void sup_thread_fill_info(const sup_thread_t *t, int64_t now_ns, sup_thread_info_t *out);
// A thread's state and lock wait without its CPU time and stack (what health
// counts need: no system call, no stack scan). wait_us is 0 unless waiting.
sup_thread_state_t sup_thread_state(const sup_thread_t *t, int64_t now_ns, int64_t *wait_us);
void sup_thread_set_exception(sup_thread_t *t, mp_obj_t exc);
// Runs Python-side bookkeeping for a thread entering user code: allocates its
// kill exception. Returns false if a kill already came: skip the user code.
// REQUIRES: GIL held, sched lock not held.
bool sup_thread_prepare(rt_thread_t *self);
// How a thread's user code ended with `exc`; records and prints the
// traceback like MicroPython does (with the "Unhandled exception in thread"
// line when `fun` is given). REQUIRES: GIL held.
sup_thread_state_t sup_thread_outcome(rt_thread_t *self, mp_obj_t exc, mp_obj_t fun, int *exit_code);

// supervisor.c
// Starts the kill of `t`, or brings an earlier one's next step closer (see
// sup_thread_kill). REQUIRES: sched lock.
void sup_kill_request(sup_thread_t *t, int64_t grace_ms);
// Reads the heap figures sup_health reports (nothing while the VM is down).
// REQUIRES: GIL held, sched lock not held.
void sup_heap_figures_publish(void);

// Soft reset (sup_reset); *by_lab tells whether a Reset call asked for it
// rather than a program (machine.reset(), its watchdog). REQUIRES: the VM
// host thread.
int sup_reset_vm(bool *by_lab);

// boot.c (the VM host thread only, sched lock not held)
// Boots the fresh VM: starts /boot.py, or /main.py when there is none; by_lab
// clears the boot-loop guard.
void sup_boot_begin(bool by_lab);
// True while boot.py runs and main.py waits for it; sup_boot_advance then
// starts main.py once boot.py has ended.
bool sup_boot_pending(void);
void sup_boot_advance(void);
// Asks the next boot to be a safe one. REQUIRES: sched lock.
void sup_boot_ask_safe(void);

// program.c
sup_program_t *sup_program_rec(uint32_t id);
void sup_program_thread_started(uint32_t program_id, uint32_t thread_id);
// Returns true when this was the program's last thread (the program ended).
bool sup_program_thread_ended(uint32_t program_id, uint32_t thread_id, sup_thread_state_t state,
                              int exit_code);
void sup_output_capture(int stream, const char *data, size_t len);
void sup_programs_clear(void);

// events.c
void sup_event_emit(sup_event_kind_t kind, uint32_t thread_id, uint32_t program_id, const uint32_t *cycle,
                    size_t cycle_len, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

// lock.c
extern const mp_obj_type_t sup_type_lock;
mp_obj_t sup_lock_new(void);
// Marks every held lock for the GC. REQUIRES: sched lock held (GC hook).
void sup_locks_mark(void);
void sup_locks_forget(void);  // after a VM restart
// The threads in a wait-for cycle through `start` (a waiting thread), or 0.
size_t sup_lock_cycle(const rt_thread_t *start, uint32_t *cycle, size_t max);
uint32_t sup_lock_id(const void *lock);
uint32_t sup_lock_owner(const void *lock);
// Releases the `_thread` locks a killed thread still owns; returns how many.
size_t sup_locks_release_owned_by(uint32_t thread_id);

// rootfs.c
// Makes the file system mounted at "/" (if any) impossible for programs to
// unmount: os.umount('/') raises OSError(EPERM) and "/" stays. Only file
// systems with the VFS protocol (VfsLfs2, VfsFat) are guarded. REQUIRES: GIL.
void sup_rootfs_guard(void);

// modfleet.c
extern const mp_obj_type_t sup_type_ThreadKilled;
// Frees the metrics slots fleet.report gave a thread. REQUIRES: sched lock.
void sup_metrics_forget_thread(uint32_t thread_id);

#endif  // THREADFLEET_SUPERVISOR_INTERNAL_H
