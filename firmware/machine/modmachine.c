// The `machine` module of a simulated board, as MicroPython's ESP32 and RP2
// ports shape it: Pin, Timer, WDT, ADC, reset()/soft_reset(), unique_id(),
// freq(), idle(), lightsleep()/deepsleep(), reset_cause(),
// disable_irq()/enable_irq(), time_pulse_us(), and upstream's Signal and
// PinBase (extmod/machine_signal.c, machine_pinbase.c) on our Pin's pin
// protocol. The hardware behind it is machine_state.c's, which the lab also
// sees and drives.
//
// Not extmod/modmachine.c: its soft_reset() is sys.exit (a port's REPL then
// soft-resets) and its disable_irq() holds MicroPython's atomic section
// across Python code, which with threads and a GIL deadlocks the second
// thread that calls it. Here both do what the board's VM does.
//
// IRQ handlers and timer callbacks run through micropython.schedule's queue,
// in whichever VM thread next passes a pending check (any thread holding the
// GIL, at its next branch, or a sleeping one, woken for it).
#include <errno.h>
#include <string.h>

#include "extmod/virtpin.h"
#include "firmware/machine/machine_schedule.h"
#include "firmware/machine/machine_state.h"
#include "firmware/runtime/board_profile.h"
#include "firmware/runtime/mpthreadport.h"
#include "firmware/supervisor/supervisor.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"

// Upstream's, from extmod/machine_signal.c, machine_pinbase.c and
// machine_pulse.c. Declared here, not through extmod/modmachine.h: that
// header declares machine_pin_type and the others extern, which this file
// defines static.
extern const mp_obj_type_t machine_signal_type;
extern const mp_obj_type_t machine_pinbase_type;
extern const mp_obj_fun_builtin_var_t machine_time_pulse_us_obj;
mp_uint_t machine_time_pulse_us(mp_hal_pin_obj_t pin, int pulse_level, mp_uint_t timeout_us);

// A handler per pin and a callback per timer slot, with the object it gets
// as argument: roots, so the GC keeps them while the hardware may fire.
MP_REGISTER_ROOT_POINTER(mp_obj_t machine_pin_irq_handler[64]);
MP_REGISTER_ROOT_POINTER(mp_obj_t machine_pin_irq_arg[64]);
MP_REGISTER_ROOT_POINTER(mp_obj_t machine_timer_callback[8]);
MP_REGISTER_ROOT_POINTER(mp_obj_t machine_timer_arg[8]);
_Static_assert(MACH_PIN_MAX == 64 && MACH_TIMER_MAX == 8, "root pointer sizes");

// The fastest timer: the ticker is a host thread, not a hardware counter.
#define TIMER_MIN_PERIOD_NS 1000000
#define FREQ_MIN_HZ 1000000u
#define FREQ_MAX_HZ 1000000000u

bool machine_schedule_pin(uint32_t pin) {
  mp_obj_t handler = MP_STATE_PORT(machine_pin_irq_handler)[pin];
  return handler != MP_OBJ_NULL && mp_sched_schedule(handler, MP_STATE_PORT(machine_pin_irq_arg)[pin]);
}

bool machine_schedule_timer(int slot) {
  mp_obj_t callback = MP_STATE_PORT(machine_timer_callback)[slot];
  return callback != MP_OBJ_NULL && mp_sched_schedule(callback, MP_STATE_PORT(machine_timer_arg)[slot]);
}

void machine_forget_objects(void) {
  memset(MP_STATE_PORT(machine_pin_irq_handler), 0, sizeof(MP_STATE_PORT(machine_pin_irq_handler)));
  memset(MP_STATE_PORT(machine_pin_irq_arg), 0, sizeof(MP_STATE_PORT(machine_pin_irq_arg)));
  memset(MP_STATE_PORT(machine_timer_callback), 0, sizeof(MP_STATE_PORT(machine_timer_callback)));
  memset(MP_STATE_PORT(machine_timer_arg), 0, sizeof(MP_STATE_PORT(machine_timer_arg)));
}

// ---- Pin -------------------------------------------------------------------------------

typedef struct {
  mp_obj_base_t base;
  uint32_t id;
} machine_pin_obj_t;

static const mp_obj_type_t machine_pin_type;

// A pin number the profile has, or "LED" on a board with one.
static uint32_t pin_id(mp_obj_t id) {
  if (mp_obj_is_type(id, &machine_pin_type)) return ((machine_pin_obj_t *)MP_OBJ_TO_PTR(id))->id;
  const board_profile_t *p = board_profile_current();
  if (mp_obj_is_str(id)) {
    if (strcmp(mp_obj_str_get_str(id), "LED") == 0 && p->led_pin != UINT32_MAX) return p->led_pin;
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("unknown named pin \"%s\""), mp_obj_str_get_str(id));
  }
  mp_int_t n = mp_obj_get_int(id);
  if (n < 0 || !mach_pin_exists((uint32_t)n)) mp_raise_ValueError(MP_ERROR_TEXT("invalid pin"));
  return (uint32_t)n;
}

static void machine_pin_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
  (void)kind;
  machine_pin_obj_t *self = MP_OBJ_TO_PTR(self_in);
  mp_printf(print, "Pin(%u)", (unsigned)self->id);
}

static mp_obj_t machine_pin_init_helper(machine_pin_obj_t *self, size_t n_args, const mp_obj_t *pos_args,
                                        mp_map_t *kw_args) {
  enum { ARG_mode, ARG_pull, ARG_value };
  static const mp_arg_t allowed_args[] = {
      {MP_QSTR_mode, MP_ARG_OBJ, {.u_obj = mp_const_none}},
      {MP_QSTR_pull, MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
      {MP_QSTR_value, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none}},
  };
  mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
  mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
  int mode = -1, pull = -1, value = -1;
  if (args[ARG_mode].u_obj != mp_const_none) {
    mode = mp_obj_get_int(args[ARG_mode].u_obj);
    if (mode < MACH_PIN_IN || mode > MACH_PIN_OPEN_DRAIN)
      mp_raise_ValueError(MP_ERROR_TEXT("invalid pin mode"));
  }
  if (args[ARG_pull].u_obj != MP_OBJ_NULL) {  // None: no pull; not given: unchanged
    pull = args[ARG_pull].u_obj == mp_const_none ? MACH_PULL_NONE : mp_obj_get_int(args[ARG_pull].u_obj);
    if (pull < MACH_PULL_NONE || pull > MACH_PULL_DOWN) mp_raise_ValueError(MP_ERROR_TEXT("invalid pull"));
  }
  if (args[ARG_value].u_obj != mp_const_none) value = mp_obj_is_true(args[ARG_value].u_obj);
  mach_pin_configure(self->id, mode, pull, value);
  return mp_const_none;
}

static mp_obj_t machine_pin_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                                     const mp_obj_t *args) {
  mp_arg_check_num(n_args, n_kw, 1, MP_OBJ_FUN_ARGS_MAX, true);
  machine_pin_obj_t *self = mp_obj_malloc(machine_pin_obj_t, type);
  self->id = pin_id(args[0]);
  mp_map_t kw_args;
  mp_map_init_fixed_table(&kw_args, n_kw, args + n_args);
  machine_pin_init_helper(self, n_args - 1, args + 1, &kw_args);
  return MP_OBJ_FROM_PTR(self);
}

static mp_obj_t machine_pin_call(mp_obj_t self_in, size_t n_args, size_t n_kw, const mp_obj_t *args) {
  mp_arg_check_num(n_args, n_kw, 0, 1, false);
  machine_pin_obj_t *self = MP_OBJ_TO_PTR(self_in);
  if (n_args == 0) return MP_OBJ_NEW_SMALL_INT(mach_pin_read(self->id));
  mach_pin_configure(self->id, -1, -1, mp_obj_is_true(args[0]));
  return mp_const_none;
}

static mp_obj_t machine_pin_obj_init(size_t n_args, const mp_obj_t *args, mp_map_t *kw_args) {
  return machine_pin_init_helper(MP_OBJ_TO_PTR(args[0]), n_args - 1, args + 1, kw_args);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(machine_pin_init_obj, 1, machine_pin_obj_init);

static mp_obj_t machine_pin_value(size_t n_args, const mp_obj_t *args) {
  return machine_pin_call(args[0], n_args - 1, 0, args + 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(machine_pin_value_obj, 1, 2, machine_pin_value);

static mp_obj_t machine_pin_on(mp_obj_t self_in) {
  mach_pin_configure(((machine_pin_obj_t *)MP_OBJ_TO_PTR(self_in))->id, -1, -1, 1);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_pin_on_obj, machine_pin_on);

static mp_obj_t machine_pin_off(mp_obj_t self_in) {
  mach_pin_configure(((machine_pin_obj_t *)MP_OBJ_TO_PTR(self_in))->id, -1, -1, 0);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_pin_off_obj, machine_pin_off);

static mp_obj_t machine_pin_toggle(mp_obj_t self_in) {
  uint32_t id = ((machine_pin_obj_t *)MP_OBJ_TO_PTR(self_in))->id;
  mach_pin_configure(id, -1, -1, !mach_pin_read(id));
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_pin_toggle_obj, machine_pin_toggle);

// irq(handler=None, trigger=IRQ_FALLING|IRQ_RISING, hard=False): the handler
// gets the Pin; hard handlers are scheduled too (a board has no ISR context
// for Python here). The handler ends with the program that set it.
static mp_obj_t machine_pin_irq(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
  enum { ARG_handler, ARG_trigger, ARG_hard };
  static const mp_arg_t allowed_args[] = {
      {MP_QSTR_handler, MP_ARG_OBJ, {.u_obj = mp_const_none}},
      {MP_QSTR_trigger, MP_ARG_INT, {.u_int = MACH_IRQ_RISING | MACH_IRQ_FALLING}},
      {MP_QSTR_hard, MP_ARG_BOOL, {.u_bool = false}},
  };
  machine_pin_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
  mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
  mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
  mp_obj_t handler = args[ARG_handler].u_obj;
  mp_int_t trigger = args[ARG_trigger].u_int;
  if (trigger & ~(mp_int_t)(MACH_IRQ_RISING | MACH_IRQ_FALLING))
    mp_raise_ValueError(MP_ERROR_TEXT("invalid trigger"));
  if (handler == mp_const_none || trigger == 0) {
    mach_pin_set_irq(self->id, 0, 0);  // first: nothing schedules it any more
    MP_STATE_PORT(machine_pin_irq_handler)[self->id] = MP_OBJ_NULL;
    MP_STATE_PORT(machine_pin_irq_arg)[self->id] = MP_OBJ_NULL;
    return mp_const_none;
  }
  if (!mp_obj_is_callable(handler)) mp_raise_TypeError(MP_ERROR_TEXT("handler must be callable"));
  MP_STATE_PORT(machine_pin_irq_handler)[self->id] = handler;
  MP_STATE_PORT(machine_pin_irq_arg)[self->id] = MP_OBJ_FROM_PTR(self);
  mach_pin_set_irq(self->id, (uint32_t)trigger, sup_current_program());
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(machine_pin_irq_obj, 1, machine_pin_irq);

// The pin protocol (extmod/virtpin.h): what Signal and time_pulse_us read
// and drive a Pin through (mp_hal_pin_read/write), as any PinBase subclass.
static mp_uint_t machine_pin_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
  uint32_t id = ((machine_pin_obj_t *)MP_OBJ_TO_PTR(self_in))->id;
  switch (request) {
    case MP_PIN_READ:
      return mach_pin_read(id);
    case MP_PIN_WRITE:
      mach_pin_configure(id, -1, -1, arg != 0);
      return 0;
    case MP_PIN_INPUT:
      mach_pin_configure(id, MACH_PIN_IN, -1, -1);
      return 0;
    case MP_PIN_OUTPUT:
      mach_pin_configure(id, MACH_PIN_OUT, -1, -1);
      return 0;
    default:
      *errcode = MP_EINVAL;
      return (mp_uint_t)-1;
  }
}

static const mp_pin_p_t machine_pin_pin_p = {.ioctl = machine_pin_ioctl};

// extmod/virtpin.h's reads and writes, which Signal and time_pulse_us make
// through mp_hal_pin_read/write: here in place of extmod/virtpin.c, which
// calls the protocol slot of whatever it is given (an int crashes it, a
// stream's protocol is no pin's). A pin is a Pin, a pin number (as ESP32's
// time_pulse_us takes), a Signal (it is a pin too) or an instance of a
// PinBase subclass; anything else is TypeError.
static bool is_subclass_of(const mp_obj_type_t *type, const mp_obj_type_t *base) {
  return mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(type), MP_OBJ_FROM_PTR(base));
}

static mp_uint_t pin_ioctl(mp_obj_t pin, mp_uint_t request, uintptr_t arg) {
  int errcode = 0;
  if (mp_obj_is_int(pin)) {
    machine_pin_obj_t numbered = {{&machine_pin_type}, pin_id(pin)};
    return machine_pin_ioctl(MP_OBJ_FROM_PTR(&numbered), request, arg, &errcode);
  }
  const mp_obj_type_t *type = mp_obj_get_type(pin);
  if (type != &machine_pin_type && !is_subclass_of(type, &machine_pinbase_type) &&
      !is_subclass_of(type, &machine_signal_type)) {
    mp_raise_msg_varg(&mp_type_TypeError, MP_ERROR_TEXT("expecting a Pin, Signal or PinBase, not %s"),
                      mp_obj_get_type_str(pin));
  }
  const mp_pin_p_t *pin_p = MP_OBJ_TYPE_GET_SLOT(type, protocol);
  return pin_p->ioctl(pin, request, arg, &errcode);
}

int mp_virtual_pin_read(mp_obj_t pin) { return (int)pin_ioctl(pin, MP_PIN_READ, 0); }

void mp_virtual_pin_write(mp_obj_t pin, int value) { pin_ioctl(pin, MP_PIN_WRITE, (uintptr_t)value); }

// Signal(4, Pin.OUT, invert=True): Signal makes the Pin with these
// arguments (MICROPY_PY_MACHINE_PIN_MAKE_NEW), as on ESP32 and RP2.
mp_obj_t mp_pin_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
  (void)type;  // Signal passes none
  return machine_pin_make_new(&machine_pin_type, n_args, n_kw, args);
}

static const mp_rom_map_elem_t machine_pin_locals_dict_table[] = {
    {MP_ROM_QSTR(MP_QSTR_init), MP_ROM_PTR(&machine_pin_init_obj)},
    {MP_ROM_QSTR(MP_QSTR_value), MP_ROM_PTR(&machine_pin_value_obj)},
    {MP_ROM_QSTR(MP_QSTR_on), MP_ROM_PTR(&machine_pin_on_obj)},
    {MP_ROM_QSTR(MP_QSTR_off), MP_ROM_PTR(&machine_pin_off_obj)},
    {MP_ROM_QSTR(MP_QSTR_toggle), MP_ROM_PTR(&machine_pin_toggle_obj)},
    {MP_ROM_QSTR(MP_QSTR_irq), MP_ROM_PTR(&machine_pin_irq_obj)},
    {MP_ROM_QSTR(MP_QSTR_IN), MP_ROM_INT(MACH_PIN_IN)},
    {MP_ROM_QSTR(MP_QSTR_OUT), MP_ROM_INT(MACH_PIN_OUT)},
    {MP_ROM_QSTR(MP_QSTR_OPEN_DRAIN), MP_ROM_INT(MACH_PIN_OPEN_DRAIN)},
    {MP_ROM_QSTR(MP_QSTR_PULL_UP), MP_ROM_INT(MACH_PULL_UP)},
    {MP_ROM_QSTR(MP_QSTR_PULL_DOWN), MP_ROM_INT(MACH_PULL_DOWN)},
    {MP_ROM_QSTR(MP_QSTR_IRQ_RISING), MP_ROM_INT(MACH_IRQ_RISING)},
    {MP_ROM_QSTR(MP_QSTR_IRQ_FALLING), MP_ROM_INT(MACH_IRQ_FALLING)},
};
static MP_DEFINE_CONST_DICT(machine_pin_locals_dict, machine_pin_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(machine_pin_type, MP_QSTR_Pin, MP_TYPE_FLAG_NONE, make_new,
                                machine_pin_make_new, print, machine_pin_print, call, machine_pin_call,
                                protocol, &machine_pin_pin_p, locals_dict, &machine_pin_locals_dict);

// time_pulse_us(pin, level, timeout_us=1000000), in place of upstream's
// busy loop (a weak function in extmod/machine_pulse.c): between reads of
// the pin the thread sleeps PULSE_POLL_US without the GIL, so other threads
// run, handlers that are due run, and a kill ends the wait whatever the
// timeout. The pulse is measured to about that step plus the host's wake-up
// latency; what the lab drives (SetPin) changes at millisecond pace anyway.
// Returns the pulse's length in us, or -2 (the pulse never began) / -1 (it
// did not end) within timeout_us, as upstream.
#define PULSE_POLL_US 10

// Waits until the pin reads `level` (until_level) or anything else (!until_level).
static bool pulse_wait(mp_hal_pin_obj_t pin, int level, bool until_level, mp_uint_t start,
                       mp_uint_t timeout_us) {
  while ((mp_hal_pin_read(pin) == level) != until_level) {
    if ((mp_uint_t)(mp_hal_ticks_us() - start) >= timeout_us) return false;
    mp_hal_delay_us(PULSE_POLL_US);
  }
  return true;
}

mp_uint_t machine_time_pulse_us(mp_hal_pin_obj_t pin, int pulse_level, mp_uint_t timeout_us) {
  mp_uint_t start = mp_hal_ticks_us();
  if (!pulse_wait(pin, pulse_level, true, start, timeout_us)) return (mp_uint_t)-2;
  start = mp_hal_ticks_us();
  if (!pulse_wait(pin, pulse_level, false, start, timeout_us)) return (mp_uint_t)-1;
  return mp_hal_ticks_us() - start;
}

// ---- ADC -------------------------------------------------------------------------------

typedef struct {
  mp_obj_base_t base;
  uint32_t channel;
} machine_adc_obj_t;

// The channel behind a pin, as on the board: RP2040 GPIO26-29 are channels
// 0-3; ESP32's ADC1 is on GPIO36-39 and 32-35; the generic board's pin n is
// channel n. UINT32_MAX: the pin has no ADC.
static uint32_t adc_channel_of_pin(uint32_t pin) {
  static const uint8_t esp32_adc1[] = {36, 37, 38, 39, 32, 33, 34, 35};
  const char *name = board_profile_current()->name;
  if (strcmp(name, "rp2") == 0) return pin >= 26 && pin <= 29 ? pin - 26 : UINT32_MAX;
  if (strcmp(name, "esp32") == 0) {
    for (uint32_t c = 0; c < sizeof(esp32_adc1); c++) {
      if (esp32_adc1[c] == pin) return c;
    }
    return UINT32_MAX;
  }
  return pin;
}

static mp_obj_t machine_adc_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                                     const mp_obj_t *args) {
  mp_arg_check_num(n_args, n_kw, 1, 1, true);
  uint32_t channel;
  if (mp_obj_is_type(args[0], &machine_pin_type)) {
    channel = adc_channel_of_pin(((machine_pin_obj_t *)MP_OBJ_TO_PTR(args[0]))->id);
  } else {
    mp_int_t n = mp_obj_get_int(args[0]);
    channel = n < 0 ? UINT32_MAX : (uint32_t)n;
  }
  if (!mach_adc_exists(channel)) mp_raise_ValueError(MP_ERROR_TEXT("invalid ADC channel"));
  machine_adc_obj_t *self = mp_obj_malloc(machine_adc_obj_t, type);
  self->channel = channel;
  mach_adc_open(channel);
  return MP_OBJ_FROM_PTR(self);
}

static void machine_adc_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
  (void)kind;
  machine_adc_obj_t *self = MP_OBJ_TO_PTR(self_in);
  mp_printf(print, "ADC(%u)", (unsigned)self->channel);
}

static mp_obj_t machine_adc_read_u16(mp_obj_t self_in) {
  machine_adc_obj_t *self = MP_OBJ_TO_PTR(self_in);
  return MP_OBJ_NEW_SMALL_INT(mach_adc_read_u16(self->channel));
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_adc_read_u16_obj, machine_adc_read_u16);

static mp_obj_t machine_adc_read_uv(mp_obj_t self_in) {
  machine_adc_obj_t *self = MP_OBJ_TO_PTR(self_in);
  uint64_t uv = (uint64_t)mach_adc_read_u16(self->channel) * MACH_ADC_FULL_SCALE_UV / 65535u;
  return mp_obj_new_int_from_uint((mp_uint_t)uv);
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_adc_read_uv_obj, machine_adc_read_uv);

// ESP32's read(): 12 bits.
static mp_obj_t machine_adc_read(mp_obj_t self_in) {
  machine_adc_obj_t *self = MP_OBJ_TO_PTR(self_in);
  return MP_OBJ_NEW_SMALL_INT(mach_adc_read_u16(self->channel) >> 4);
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_adc_read_obj, machine_adc_read);

static const mp_rom_map_elem_t machine_adc_locals_dict_table[] = {
    {MP_ROM_QSTR(MP_QSTR_read_u16), MP_ROM_PTR(&machine_adc_read_u16_obj)},
    {MP_ROM_QSTR(MP_QSTR_read_uv), MP_ROM_PTR(&machine_adc_read_uv_obj)},
    {MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&machine_adc_read_obj)},
};
static MP_DEFINE_CONST_DICT(machine_adc_locals_dict, machine_adc_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(machine_adc_type, MP_QSTR_ADC, MP_TYPE_FLAG_NONE, make_new,
                                machine_adc_make_new, print, machine_adc_print, locals_dict,
                                &machine_adc_locals_dict);

// ---- Timer -----------------------------------------------------------------------------

typedef struct {
  mp_obj_base_t base;
  int32_t id;
  int slot;
  uint32_t gen;
} machine_timer_obj_t;

static void timer_claim(machine_timer_obj_t *self) {
  self->slot = mach_timer_claim(self->id, &self->gen);
  if (self->slot < 0) mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("all timers are in use"));
}

static mp_obj_t machine_timer_init_helper(machine_timer_obj_t *self, size_t n_args, const mp_obj_t *pos_args,
                                          mp_map_t *kw_args) {
  enum { ARG_mode, ARG_callback, ARG_period, ARG_tick_hz, ARG_freq };
  static const mp_arg_t allowed_args[] = {
      {MP_QSTR_mode, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = MACH_TIMER_PERIODIC}},
      {MP_QSTR_callback, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none}},
      {MP_QSTR_period, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = -1}},
      {MP_QSTR_tick_hz, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = 1000}},
      {MP_QSTR_freq, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none}},
  };
  mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
  mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
  mp_int_t mode = args[ARG_mode].u_int;
  if (mode != MACH_TIMER_ONE_SHOT && mode != MACH_TIMER_PERIODIC)
    mp_raise_ValueError(MP_ERROR_TEXT("invalid timer mode"));
  int64_t period_ns;
  if (args[ARG_freq].u_obj != mp_const_none) {
    mp_float_t freq = mp_obj_get_float(args[ARG_freq].u_obj);
    if (!(freq > 0)) mp_raise_ValueError(MP_ERROR_TEXT("freq must be positive"));
    period_ns = (int64_t)(1e9 / freq);
  } else if (args[ARG_period].u_int > 0 && args[ARG_tick_hz].u_int > 0) {
    period_ns = (int64_t)args[ARG_period].u_int * 1000000000 / args[ARG_tick_hz].u_int;
  } else {
    mp_raise_ValueError(MP_ERROR_TEXT("Timer needs a positive period or freq"));
  }
  if (period_ns < TIMER_MIN_PERIOD_NS)
    mp_raise_ValueError(MP_ERROR_TEXT("timer period under 1 ms (freq over 1 kHz)"));
  mp_obj_t callback = args[ARG_callback].u_obj;
  if (callback != mp_const_none && !mp_obj_is_callable(callback))
    mp_raise_TypeError(MP_ERROR_TEXT("callback must be callable"));
  if (!mach_timer_valid(self->slot, self->gen)) timer_claim(self);
  mach_timer_stop(self->slot);                                      // while the objects change
  if (!mach_timer_valid(self->slot, self->gen)) timer_claim(self);  // a virtual one's slot was freed
  MP_STATE_PORT(machine_timer_callback)[self->slot] = callback == mp_const_none ? MP_OBJ_NULL : callback;
  MP_STATE_PORT(machine_timer_arg)[self->slot] = MP_OBJ_FROM_PTR(self);
  mach_timer_start(self->slot, (mach_timer_mode_t)mode, period_ns, callback != mp_const_none,
                   sup_current_program());
  return mp_const_none;
}

static mp_obj_t machine_timer_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                                       const mp_obj_t *args) {
  mp_arg_check_num(n_args, n_kw, 0, 1, true);
  mp_int_t id = n_args > 0 ? mp_obj_get_int(args[0]) : -1;
  if (id < -1 || id >= (mp_int_t)board_profile_current()->hw_timer_count)
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("Timer(%d) doesn't exist"), (int)id);
  machine_timer_obj_t *self = mp_obj_malloc(machine_timer_obj_t, type);
  self->id = (int32_t)id;
  timer_claim(self);
  if (n_kw > 0) {
    mp_map_t kw_args;
    mp_map_init_fixed_table(&kw_args, n_kw, args + n_args);
    machine_timer_init_helper(self, 0, NULL, &kw_args);
  }
  return MP_OBJ_FROM_PTR(self);
}

static void machine_timer_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
  (void)kind;
  machine_timer_obj_t *self = MP_OBJ_TO_PTR(self_in);
  mp_printf(print, "Timer(%d)", (int)self->id);
}

static mp_obj_t machine_timer_init(size_t n_args, const mp_obj_t *args, mp_map_t *kw_args) {
  return machine_timer_init_helper(MP_OBJ_TO_PTR(args[0]), n_args - 1, args + 1, kw_args);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(machine_timer_init_obj, 1, machine_timer_init);

static mp_obj_t machine_timer_deinit(mp_obj_t self_in) {
  machine_timer_obj_t *self = MP_OBJ_TO_PTR(self_in);
  if (!mach_timer_valid(self->slot, self->gen)) return mp_const_none;
  mach_timer_stop(self->slot);  // first: nothing schedules it any more
  MP_STATE_PORT(machine_timer_callback)[self->slot] = MP_OBJ_NULL;
  MP_STATE_PORT(machine_timer_arg)[self->slot] = MP_OBJ_NULL;
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_timer_deinit_obj, machine_timer_deinit);

static const mp_rom_map_elem_t machine_timer_locals_dict_table[] = {
    {MP_ROM_QSTR(MP_QSTR_init), MP_ROM_PTR(&machine_timer_init_obj)},
    {MP_ROM_QSTR(MP_QSTR_deinit), MP_ROM_PTR(&machine_timer_deinit_obj)},
    {MP_ROM_QSTR(MP_QSTR_ONE_SHOT), MP_ROM_INT(MACH_TIMER_ONE_SHOT)},
    {MP_ROM_QSTR(MP_QSTR_PERIODIC), MP_ROM_INT(MACH_TIMER_PERIODIC)},
};
static MP_DEFINE_CONST_DICT(machine_timer_locals_dict, machine_timer_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(machine_timer_type, MP_QSTR_Timer, MP_TYPE_FLAG_NONE, make_new,
                                machine_timer_make_new, print, machine_timer_print, locals_dict,
                                &machine_timer_locals_dict);

// ---- WDT -------------------------------------------------------------------------------

typedef struct {
  mp_obj_base_t base;
} machine_wdt_obj_t;

static mp_obj_t machine_wdt_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                                     const mp_obj_t *all_args) {
  enum { ARG_id, ARG_timeout };
  static const mp_arg_t allowed_args[] = {
      {MP_QSTR_id, MP_ARG_INT, {.u_int = 0}},
      {MP_QSTR_timeout, MP_ARG_INT, {.u_int = 5000}},
  };
  mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
  mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
  if (args[ARG_id].u_int != 0) mp_raise_ValueError(MP_ERROR_TEXT("WDT id must be 0"));
  mp_int_t timeout = args[ARG_timeout].u_int;
  if (timeout < 1 || timeout > 0x7fffffff)
    mp_raise_ValueError(MP_ERROR_TEXT("WDT timeout must be 1 ms or more"));
  machine_wdt_obj_t *self = mp_obj_malloc(machine_wdt_obj_t, type);
  mach_wdt_arm((uint32_t)timeout, sup_current_program());
  return MP_OBJ_FROM_PTR(self);
}

static mp_obj_t machine_wdt_feed(mp_obj_t self_in) {
  (void)self_in;
  mach_wdt_feed();
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_wdt_feed_obj, machine_wdt_feed);

static const mp_rom_map_elem_t machine_wdt_locals_dict_table[] = {
    {MP_ROM_QSTR(MP_QSTR_feed), MP_ROM_PTR(&machine_wdt_feed_obj)},
};
static MP_DEFINE_CONST_DICT(machine_wdt_locals_dict, machine_wdt_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(machine_wdt_type, MP_QSTR_WDT, MP_TYPE_FLAG_NONE, make_new,
                                machine_wdt_make_new, locals_dict, &machine_wdt_locals_dict);

// ---- Module functions ------------------------------------------------------------------

// A reset never returns: the VM host thread kills every thread (this one
// too: the kill is raised in the sleep) and starts a fresh VM.
static NORETURN void wait_for_reset(void) {
  for (;;) mp_hal_delay_ms(1000);
}

static NORETURN void reset_vm(mach_reset_cause_t cause, const char *by) {
  // `fleetboard run` has no VM to restart: the program ends, as a script
  // ends on the unix port.
  if (!mach_request_reset(cause, by)) mp_raise_type(&mp_type_SystemExit);
  wait_for_reset();
}

static NORETURN mp_obj_t machine_reset(void) {
  reset_vm(MACH_RESET_HARD, "machine.reset(): the VM restarted");
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_reset_obj, machine_reset);

static NORETURN mp_obj_t machine_soft_reset(void) {
  reset_vm(MACH_RESET_SOFT, "machine.soft_reset(): the VM restarted");
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_soft_reset_obj, machine_soft_reset);

static mp_obj_t machine_reset_cause(void) { return MP_OBJ_NEW_SMALL_INT(mach_reset_cause()); }
static MP_DEFINE_CONST_FUN_OBJ_0(machine_reset_cause_obj, machine_reset_cause);

static mp_obj_t machine_unique_id(void) {
  uint8_t id[8];
  size_t len = 0;
  mach_unique_id(id, &len);
  return mp_obj_new_bytes(id, len);
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_unique_id_obj, machine_unique_id);

static mp_obj_t machine_freq(size_t n_args, const mp_obj_t *args) {
  if (n_args == 0) return mp_obj_new_int_from_uint(mach_freq());
  mp_int_t hz = mp_obj_get_int(args[0]);
  if (hz < (mp_int_t)FREQ_MIN_HZ || hz > (mp_int_t)FREQ_MAX_HZ)
    mp_raise_ValueError(MP_ERROR_TEXT("freq must be 1 MHz to 1 GHz"));
  mach_set_freq((uint32_t)hz);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(machine_freq_obj, 0, 1, machine_freq);

// A board idles until its next interrupt, at the latest its 1 ms tick.
static mp_obj_t machine_idle(void) {
  mp_hal_delay_ms(1);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_idle_obj, machine_idle);

static bool sched_pending(void *ctx) {
  (void)ctx;
  return MP_STATE_VM(sched_state) == MP_SCHED_PENDING;
}

// lightsleep(ms): a sleep; without ms, until an interrupt's handler is due.
static mp_obj_t machine_lightsleep(size_t n_args, const mp_obj_t *args) {
  if (n_args > 0) {
    mp_hal_delay_ms((mp_uint_t)MAX(0, mp_obj_get_int(args[0])));
    return mp_const_none;
  }
  rt_block(RT_BLOCK_SLEEP, NULL, -1, sched_pending, NULL);
  mp_handle_pending(true);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(machine_lightsleep_obj, 0, 1, machine_lightsleep);

// deepsleep(ms): sleeps, then wakes as a board does from deep sleep: a fresh
// VM whose reset_cause() is DEEPSLEEP_RESET. Without ms it sleeps until the
// board is reset.
static NORETURN mp_obj_t machine_deepsleep(size_t n_args, const mp_obj_t *args) {
  if (n_args == 0) wait_for_reset();
  mp_int_t ms = MAX(0, mp_obj_get_int(args[0]));
  mp_hal_delay_ms((mp_uint_t)ms);
  reset_vm(MACH_RESET_DEEPSLEEP, "machine.deepsleep(): woke with a fresh VM");
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(machine_deepsleep_obj, 0, 1, machine_deepsleep);

static mp_obj_t machine_disable_irq(void) {
  int state = mach_irq_disable();
  if (state == -EINTR) {
    mp_handle_pending(true);  // raises the kill that woke us
    state = 0;
  }
  return MP_OBJ_NEW_SMALL_INT(state);
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_disable_irq_obj, machine_disable_irq);

static mp_obj_t machine_enable_irq(mp_obj_t state) {
  if (mp_obj_is_true(state)) mach_irq_enable();
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(machine_enable_irq_obj, machine_enable_irq);

static const mp_rom_map_elem_t machine_module_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_machine)},
    {MP_ROM_QSTR(MP_QSTR_Pin), MP_ROM_PTR(&machine_pin_type)},
    {MP_ROM_QSTR(MP_QSTR_Signal), MP_ROM_PTR(&machine_signal_type)},
    {MP_ROM_QSTR(MP_QSTR_PinBase), MP_ROM_PTR(&machine_pinbase_type)},
    {MP_ROM_QSTR(MP_QSTR_time_pulse_us), MP_ROM_PTR(&machine_time_pulse_us_obj)},
    {MP_ROM_QSTR(MP_QSTR_ADC), MP_ROM_PTR(&machine_adc_type)},
    {MP_ROM_QSTR(MP_QSTR_Timer), MP_ROM_PTR(&machine_timer_type)},
    {MP_ROM_QSTR(MP_QSTR_WDT), MP_ROM_PTR(&machine_wdt_type)},
    {MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&machine_reset_obj)},
    {MP_ROM_QSTR(MP_QSTR_soft_reset), MP_ROM_PTR(&machine_soft_reset_obj)},
    {MP_ROM_QSTR(MP_QSTR_reset_cause), MP_ROM_PTR(&machine_reset_cause_obj)},
    {MP_ROM_QSTR(MP_QSTR_unique_id), MP_ROM_PTR(&machine_unique_id_obj)},
    {MP_ROM_QSTR(MP_QSTR_freq), MP_ROM_PTR(&machine_freq_obj)},
    {MP_ROM_QSTR(MP_QSTR_idle), MP_ROM_PTR(&machine_idle_obj)},
    {MP_ROM_QSTR(MP_QSTR_lightsleep), MP_ROM_PTR(&machine_lightsleep_obj)},
    {MP_ROM_QSTR(MP_QSTR_deepsleep), MP_ROM_PTR(&machine_deepsleep_obj)},
    {MP_ROM_QSTR(MP_QSTR_disable_irq), MP_ROM_PTR(&machine_disable_irq_obj)},
    {MP_ROM_QSTR(MP_QSTR_enable_irq), MP_ROM_PTR(&machine_enable_irq_obj)},
    {MP_ROM_QSTR(MP_QSTR_PWRON_RESET), MP_ROM_INT(MACH_RESET_POWER_ON)},
    {MP_ROM_QSTR(MP_QSTR_HARD_RESET), MP_ROM_INT(MACH_RESET_HARD)},
    {MP_ROM_QSTR(MP_QSTR_WDT_RESET), MP_ROM_INT(MACH_RESET_WATCHDOG)},
    {MP_ROM_QSTR(MP_QSTR_DEEPSLEEP_RESET), MP_ROM_INT(MACH_RESET_DEEPSLEEP)},
    {MP_ROM_QSTR(MP_QSTR_SOFT_RESET), MP_ROM_INT(MACH_RESET_SOFT)},
};
static MP_DEFINE_CONST_DICT(machine_module_globals, machine_module_globals_table);

const mp_obj_module_t machine_module = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&machine_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_machine, machine_module);
