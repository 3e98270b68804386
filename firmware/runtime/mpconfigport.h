// MicroPython configuration of the threadfleet board.
//
// Threads are on, with a GIL (docs/architecture.md says why). `_thread` is
// ours (firmware/supervisor/modthread.c), not py/modthread.c, so every thread
// and lock is known to the supervisor.
#include <alloca.h>
#include <stdint.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

typedef intptr_t mp_int_t;    // must be pointer size
typedef uintptr_t mp_uint_t;  // must be pointer size
typedef long mp_off_t;

#define MICROPY_MPHALPORT_H "firmware/runtime/mphalport.h"
#define MICROPY_MPTHREADPORT_H "firmware/runtime/mpthreadport.h"

// Core.
#define MICROPY_ENABLE_COMPILER (1)
#define MICROPY_ENABLE_GC (1)
#define MICROPY_ENABLE_FINALISER (1)
#define MICROPY_STACK_CHECK (1)
// Native code may run this deep between two stack checks (printf, the
// compiler's leaves, littlefs).
#define MICROPY_STACK_CHECK_MARGIN (8 * 1024)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_ENABLE_PYSTACK (0)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_WARNINGS (1)
// The generic profile's identity; the board's profile replaces it at run
// time (board_identity.c).
#define MICROPY_PY_SYS_PLATFORM "threadfleet"
#define MICROPY_HW_BOARD_NAME "threadfleet simulated board"
#define MICROPY_HW_MCU_NAME "host"
#define MICROPY_PY_SYS_ARGV (1)
#define MICROPY_PY_SYS_EXIT (1)
#define MICROPY_PY_SYS_EXC_INFO (1)
#define MICROPY_PY_SYS_STDFILES (1)
#define MICROPY_PY_SYS_STDIO_BUFFER (1)
#define MICROPY_USE_INTERNAL_PRINTF (0)
#define MICROPY_USE_INTERNAL_ERRNO (0)
#define MICROPY_ENABLE_SCHEDULER (1)
#define MICROPY_EPOCH_IS_1970 (1)
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_BUILTINS_HELP (1)
#define MICROPY_PY_BUILTINS_INPUT (0)
#define MICROPY_REPL_INFO (0)
#define MICROPY_HELPER_REPL (0)
#define MICROPY_ENABLE_VM_ABORT (0)
#define MICROPY_OPT_COMPUTED_GOTO (1)

// Threads: ours, with a GIL bounced every 32 branches (the bounce is a yield
// point; see mpthreadport.c).
#define MICROPY_PY_THREAD (1)
#define MICROPY_PY_THREAD_GIL (1)
#define MICROPY_PY_THREAD_GIL_VM_DIVISOR (32)
// Every branch is a point where the VM can interrupt a thread: counted, so a
// thread that stops passing them shows as "in native code" (rt_gil_native_ns).
#define MICROPY_VM_HOOK_LOOP rt_vm_step();
void rt_begin_atomic(void);
void rt_end_atomic(void);
#define MICROPY_BEGIN_ATOMIC_SECTION() (rt_begin_atomic(), 0)
#define MICROPY_END_ATOMIC_SECTION(state) ((void)(state), rt_end_atomic())

// Output: print() and tracebacks go to the supervisor's capture.
extern const struct _mp_print_t rt_stderr_print;
#define MICROPY_ERROR_PRINTER (&rt_stderr_print)
#define MP_PLAT_PRINT_STRN(str, len) mp_hal_stdout_tx_strn(str, len)

// Flash: littlefs v2 on a block device, mounted at "/".
#define MICROPY_VFS (1)
#define MICROPY_VFS_LFS2 (1)
#define MICROPY_VFS_WRITABLE (1)
#define MICROPY_READER_VFS (1)
#define MICROPY_PY_OS (1)
#define MICROPY_PY_OS_UNAME (1)
#define MICROPY_PY_OS_SEP (1)
#define MICROPY_PY_OS_STATVFS (1)
// os.urandom reads the kernel's getrandom() (mphalport.c), as a board reads its
// hardware RNG.
#define MICROPY_PY_OS_URANDOM (1)
#define MICROPY_PY_OS_INCLUDEFILE "firmware/runtime/modos_port.h"
// The `vfs` module, and the file systems a board image carries besides
// littlefs v2 (FAT for SD cards, littlefs v1), for programs that mount their
// own block devices.
#define MICROPY_PY_VFS (1)
#define MICROPY_VFS_FAT (1)
#define MICROPY_VFS_LFS1 (1)
#define MICROPY_FATFS_ENABLE_LFN (1)
#define MICROPY_FATFS_RPATH (2)
#define MICROPY_FATFS_MAX_SS (4096)
#define MICROPY_FATFS_LFN_CODE_PAGE 437
#define MICROPY_PY_IO (1)

// Modules: what a board program reaches for, as on the esp32 and rp2 ports,
// each switched on with its upstream flag; nothing that touches the host (no
// ffi, no VfsPosix). hashlib and cryptolib are backed by mbedTLS,
// as on esp32: Debian's source strips axtls, and we link mbedTLS for TLS.
#define MICROPY_PY_TIME (1)
#define MICROPY_PY_TIME_TIME_TIME_NS (1)
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (1)
#define MICROPY_PY_TIME_INCLUDEFILE "firmware/runtime/modtime_port.h"
#define MICROPY_PY_JSON (1)
#define MICROPY_PY_RE (1)
#define MICROPY_PY_RE_MATCH_GROUPS (1)
#define MICROPY_PY_RE_MATCH_SPAN_START_END (1)
#define MICROPY_PY_RANDOM (1)
#define MICROPY_PY_RANDOM_EXTRA_FUNCS (1)
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC (rt_random_seed())
unsigned int rt_random_seed(void);
#define MICROPY_PY_BINASCII (1)
#define MICROPY_PY_BINASCII_CRC32 (1)
#define MICROPY_PY_HEAPQ (1)
#define MICROPY_PY_HASHLIB (1)
#define MICROPY_PY_HASHLIB_SHA256 (1)
#define MICROPY_PY_HASHLIB_SHA1 (1)
#define MICROPY_PY_HASHLIB_MD5 (1)
#define MICROPY_SSL_MBEDTLS (1)
#define MICROPY_PY_CRYPTOLIB (1)
#define MICROPY_PY_SELECT (1)
#define MICROPY_PY_SELECT_SELECT (1)
#define MICROPY_PY_SOCKET (0)
#define MICROPY_PY_MACHINE (0)
// `machine` is firmware/machine/modmachine.c; of extmod's machine parts it
// takes Signal, PinBase and time_pulse_us, which ESP32 and RP2 boards have
// (PinBase: Python classes as pins, as the unix port offers). Signal makes
// a Pin from Pin's own arguments through mp_pin_make_new.
#define MICROPY_PY_MACHINE_SIGNAL (1)
#define MICROPY_PY_MACHINE_PIN_BASE (1)
#define MICROPY_PY_MACHINE_PULSE (1)
#define MICROPY_PY_MACHINE_PIN_MAKE_NEW mp_pin_make_new
#define MICROPY_PY_NETWORK (0)
#define MICROPY_PY_DEFLATE (1)
#define MICROPY_PY_DEFLATE_COMPRESS (1)
#define MICROPY_PY_FRAMEBUF (1)
#define MICROPY_PY_BTREE (0)
#define MICROPY_PY_UCTYPES (1)
#define MICROPY_PY_WEBSOCKET (1)
#define MICROPY_PY_WEBREPL (0)
#define MICROPY_PY_OS_DUPTERM (0)
#define MICROPY_PY_PLATFORM (1)
// micropython.mem_total/mem_current/mem_peak: the allocation counters a
// program uses to find its leaks (m_free then needs the block's size).
#define MICROPY_MEM_STATS (1)
#define MICROPY_MALLOC_USES_ALLOCATED_SIZE (1)
#define MICROPY_PY_MARSHAL (0)
#define MICROPY_VFS_ROM (0)

// Network: `socket` is ours (firmware/net/modsocket.c, registered by
// MP_REGISTER_MODULE) on the board's lwIP stack, like the esp32 port's; so
// extmod's socket modules (MICROPY_PY_SOCKET: the unix one; MICROPY_PY_LWIP:
// modlwip over lwIP's raw API) and `network` stay off.
#define MICROPY_PY_LWIP (0)

// select.poll waits like a sleep: without the GIL, woken by a kill, and in
// short steps so it re-checks the polled objects.
void rt_event_wait_ms(mp_uint_t timeout_ms);
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) rt_event_wait_ms(TIMEOUT_MS)

#define MP_STATE_PORT MP_STATE_VM

#define MICROPY_PY_SYS_PS1_PS2 (0)

// ---- Imports and code as on a real board (issue 14, vm) -------------------
// Frozen modules (asyncio's Python half, from the fetched source's
// extmod/asyncio through firmware/runtime/frozen_manifest.py) and .mpy files on flash
// import like on an official board image; their qstrs live in the frozen
// content's own pool.
#define MICROPY_MODULE_FROZEN_MPY (1)
#define MICROPY_QSTR_EXTRA_POOL mp_qstr_frozen_const_pool
#define MICROPY_PERSISTENT_CODE_LOAD (1)
#define MICROPY_PY_ASYNCIO (1)
// @micropython.native / @micropython.viper and `-X emit=native`: x86-64
// machine code in pages mapped executable (exec_memory.c), as the real ports
// emit Xtensa or Thumb code.
#define MICROPY_EMIT_X64 (1)
void rt_exec_alloc(size_t min_size, void **ptr, size_t *size);
void rt_exec_free(void *ptr, size_t size);
#define MP_PLAT_ALLOC_EXEC(min_size, ptr, size) rt_exec_alloc(min_size, ptr, size)
#define MP_PLAT_FREE_EXEC(ptr, size) rt_exec_free(ptr, size)
// micropython.alloc_emergency_exception_buf(n) exists (board programs call it
// first thing); the buffer is the size the program asks for.
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE (0)
// The port's `sys` (board_identity.c), which py/objmodule.c's delegation
// table names.
extern const struct _mp_obj_module_t rt_sys_module;
