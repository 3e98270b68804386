// BoardControl's GetMachine, SetPin and SetAdc: the simulated hardware
// (firmware/machine/machine_state.h) as the lab reads and drives it, and the
// MachineState every health snapshot carries. None of them needs the VM: the
// hardware's tables have a mutex of their own.
#include <errno.h>
#include <string.h>

#include "firmware/machine/machine_state.h"
#include "firmware/rpc/control/board_internal.h"

// The machine's enums use the proto's numbers, so mapping is a cast.
_Static_assert((int)MACH_PIN_OPEN_DRAIN == threadfleet_board_v1_PinMode_PIN_MODE_OPEN_DRAIN &&
                   (int)MACH_PULL_DOWN == threadfleet_board_v1_PinPull_PIN_PULL_DOWN &&
                   (int)MACH_TIMER_PERIODIC == threadfleet_board_v1_TimerMode_TIMER_MODE_PERIODIC &&
                   (int)MACH_RESET_SOFT == threadfleet_board_v1_ResetCause_RESET_CAUSE_SOFT,
               "machine enums");
_Static_assert(MACH_SNAPSHOT_PINS ==
                       sizeof(((BOARD_PB(MachineState) *)0)->pins) / sizeof(BOARD_PB(PinState)) &&
                   MACH_ADC_MAX == sizeof(((BOARD_PB(MachineState) *)0)->adcs) / sizeof(BOARD_PB(AdcState)) &&
                   MACH_TIMER_MAX ==
                       sizeof(((BOARD_PB(MachineState) *)0)->timers) / sizeof(BOARD_PB(TimerState)),
               "MachineState capacities (board.options)");

static void pb_pin(const mach_pin_state_t *in, BOARD_PB(PinState) * out) {
  *out = (BOARD_PB(PinState)){.pin = in->pin,
                              .mode = (BOARD_PB(PinMode))in->mode,
                              .pull = (BOARD_PB(PinPull))in->pull,
                              .value = in->value,
                              .lab_driven = in->lab_driven,
                              .irq = in->irq,
                              .irq_count = in->irq_count};
}

static void pb_adc(const mach_adc_state_t *in, BOARD_PB(AdcState) * out) {
  *out = (BOARD_PB(AdcState)){.channel = in->channel, .value_u16 = in->value_u16, .lab_set = in->lab_set};
}

void board_fill_machine(BOARD_PB(MachineState) * out) {
  mach_state_t m;
  mach_snapshot(&m);
  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < m.pin_count; i++) pb_pin(&m.pins[i], &out->pins[i]);
  out->pins_count = (pb_size_t)m.pin_count;
  for (size_t i = 0; i < m.adc_count; i++) pb_adc(&m.adcs[i], &out->adcs[i]);
  out->adcs_count = (pb_size_t)m.adc_count;
  for (size_t i = 0; i < m.timer_count; i++) {
    const mach_timer_state_t *t = &m.timers[i];
    out->timers[i] = (BOARD_PB(TimerState)){.id = t->id,
                                            .mode = (BOARD_PB(TimerMode))t->mode,
                                            .period_ms = t->period_ms,
                                            .running = t->running,
                                            .fired = t->fired};
  }
  out->timers_count = (pb_size_t)m.timer_count;
  out->has_watchdog = true;
  out->watchdog = (BOARD_PB(WatchdogState)){.armed = m.wdt_armed,
                                            .timeout_ms = m.wdt_timeout_ms,
                                            .since_feed_ms = m.wdt_since_feed_ms,
                                            .resets = m.wdt_resets};
  out->reset_cause = (BOARD_PB(ResetCause))m.reset_cause;
  out->freq_hz = m.freq_hz;
}

void board_get_machine(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(GetMachineRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(GetMachineRequest_fields), &req)) return;
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(GetMachineResponse) *resp = &s->msg.get_machine;
  resp->has_machine = true;
  board_fill_machine(&resp->machine);
  bool sent = board_send(call, s, BOARD_PB(GetMachineResponse_fields), resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_set_pin(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(SetPinRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(SetPinRequest_fields), &req)) return;
  char why[BOARD_WHY_MAX];
  mach_pin_state_t pin;
  int rc = mach_set_pin(req.pin, req.value, req.release, &pin, why, sizeof(why));
  if (rc != 0) {
    board_finish(call, rc == -EPERM ? RPC_STATUS_FAILED_PRECONDITION : RPC_STATUS_INVALID_ARGUMENT, "%s",
                 why);
    return;
  }
  BOARD_PB(SetPinResponse) resp = {.has_pin = true};
  pb_pin(&pin, &resp.pin);
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(SetPinResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_set_adc(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(SetAdcRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(SetAdcRequest_fields), &req)) return;
  char why[BOARD_WHY_MAX];
  mach_adc_state_t adc;
  if (mach_set_adc(req.channel, req.value_u16, &adc, why, sizeof(why)) != 0) {
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "%s", why);
    return;
  }
  BOARD_PB(SetAdcResponse) resp = {.has_adc = true};
  pb_adc(&adc, &resp.adc);
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(SetAdcResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}
