// fleetctl machine, pin, adc and reset: a board's simulated hardware, read
// and driven from the lab as wires on a bench would (BoardControl GetMachine,
// SetPin, SetAdc through fleetd), and its reset button (Fleet.ResetBoard).

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/cli/commands.h"
#include "server/cli/machine_format.h"
#include "server/common/machine_input.h"

namespace threadfleet::cli {
namespace {

// A number the way a user types a pin, a channel or a value: decimal
// digits only; throws CLI::ValidationError naming `what` otherwise.
uint64_t ParseNumber(const std::string& text, absl::string_view what) {
  uint64_t value = 0;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(text, &value)) {
    throw CLI::ValidationError(absl::StrCat(what, " '", text, "' is not a number"));
  }
  return value;
}

// The board's machine as it is now; nullopt after reporting the failure.
std::optional<board::v1::MachineState> GetMachine(Session& session, const std::string& board,
                                                  int& exit_code) {
  fleet::v1::GetMachineRequest request;
  request.set_board(board);
  fleet::v1::GetMachineResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().GetMachine(context.get(), request, &response);
  if (!status.ok()) {
    exit_code = session.Fail(status);
    return std::nullopt;
  }
  return std::move(*response.mutable_machine());
}

int ShowMachine(Session& session, const std::string& board) {
  int failed = kExitOk;
  std::optional<board::v1::MachineState> machine = GetMachine(session, board, failed);
  if (!machine.has_value()) return failed;
  if (session.json()) {
    session.PrintJson(*machine, JsonLayout::kPretty);
  } else {
    session.out() << RenderMachine(*machine) << std::flush;
  }
  return kExitOk;
}

int ShowPin(Session& session, const std::string& board, uint32_t number) {
  int failed = kExitOk;
  std::optional<board::v1::MachineState> machine = GetMachine(session, board, failed);
  if (!machine.has_value()) return failed;
  for (const board::v1::PinState& pin : machine->pins()) {
    if (pin.pin() != number) continue;
    if (session.json()) {
      session.PrintJson(pin, JsonLayout::kPretty);
    } else {
      session.out() << RenderPins({pin}) << std::flush;
    }
    return kExitOk;
  }
  return session.Fail(
      absl::StrCat("board ", board, ": pin ", number,
                   " is not in use (no program configured it and the lab does not drive it)"));
}

int SetPin(Session& session, const fleet::v1::SetPinRequest& request) {
  fleet::v1::SetPinResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().SetPin(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response.pin(), JsonLayout::kPretty);
  } else {
    session.out() << RenderPins({response.pin()}) << std::flush;
  }
  return kExitOk;
}

int ShowAdc(Session& session, const std::string& board, uint32_t channel) {
  int failed = kExitOk;
  std::optional<board::v1::MachineState> machine = GetMachine(session, board, failed);
  if (!machine.has_value()) return failed;
  for (const board::v1::AdcState& adc : machine->adcs()) {
    if (adc.channel() != channel) continue;
    if (session.json()) {
      session.PrintJson(adc, JsonLayout::kPretty);
    } else {
      session.out() << RenderAdcs({adc}) << std::flush;
    }
    return kExitOk;
  }
  return session.Fail(absl::StrCat("board ", board, ": ADC channel ", channel,
                                   " is not in use (no program opened it and the lab did not set it)"));
}

int SetAdc(Session& session, const fleet::v1::SetAdcRequest& request) {
  fleet::v1::SetAdcResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().SetAdc(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response.adc(), JsonLayout::kPretty);
  } else {
    session.out() << RenderAdcs({response.adc()}) << std::flush;
  }
  return kExitOk;
}

// What a reset did, in one line: the user pushed a new main.py or driver
// and wants to know whether it runs now.
std::string ResetText(const std::string& board, bool safe_boot, bool hard) {
  if (hard) return absl::StrCat(board, ": hard reset (threads stuck in native code; the board restarted)");
  return absl::StrCat(board, safe_boot ? ": reset (safe boot: /boot.py and /main.py skipped)"
                                       : ": reset (fresh VM; /boot.py and /main.py run again)");
}

int ResetBoard(Session& session, const fleet::v1::ResetBoardRequest& request) {
  fleet::v1::ResetBoardResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ResetBoard(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << ResetText(request.board(), request.safe_boot(), response.hard()) << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddMachineCommands(CLI::App& app, Action& action) {
  {
    auto board = std::make_shared<std::string>();
    CLI::App* machine =
        app.add_subcommand("machine", "Show a board's pins, ADC channels, timers, watchdog and reset cause");
    machine->add_option("BOARD", *board, "Board name")->required();
    machine->callback([&action, board] {
      action = [board = *board](Session& session) { return ShowMachine(session, board); };
    });
  }
  {
    struct Words {
      std::string board;
      std::string pin;
      std::string value;
    };
    auto words = std::make_shared<Words>();
    CLI::App* pin = app.add_subcommand(
        "pin", "Show a board's pin, or drive it from the lab (0|1) or hand it back (release)");
    pin->add_option("BOARD", words->board, "Board name")->required();
    pin->add_option("PIN", words->pin, "GPIO number, as machine.Pin(n) takes it")->required();
    pin->add_option("VALUE", words->value, "0 or 1 to drive the pin, release to stop driving it");
    pin->callback([&action, words] {
      const uint64_t number = ParseNumber(words->pin, "PIN");
      ThrowUsageErrorUnlessOk(common::CheckPinNumber("PIN", number));
      if (words->value.empty()) {
        action = [board = words->board, number](Session& session) {
          return ShowPin(session, board, static_cast<uint32_t>(number));
        };
        return;
      }
      fleet::v1::SetPinRequest request;
      request.set_board(words->board);
      request.set_pin(static_cast<uint32_t>(number));
      if (words->value == "release") {
        request.set_release(true);
      } else {
        if (words->value != "0" && words->value != "1") {
          throw CLI::ValidationError(
              absl::StrCat("VALUE '", words->value, "' is neither a level (0 or 1) nor release"));
        }
        request.set_value(words->value == "1" ? 1 : 0);
      }
      action = [request](Session& session) { return SetPin(session, request); };
    });
  }
  {
    struct Words {
      std::string board;
      std::string channel;
      std::string value;
    };
    auto words = std::make_shared<Words>();
    CLI::App* adc = app.add_subcommand("adc", "Show what a board's ADC channel reads, or set it (0..65535)");
    adc->add_option("BOARD", words->board, "Board name")->required();
    adc->add_option("CHANNEL", words->channel, "ADC channel")->required();
    adc->add_option("VALUE", words->value, "What read_u16() returns, 0..65535");
    adc->callback([&action, words] {
      const uint64_t channel = ParseNumber(words->channel, "CHANNEL");
      ThrowUsageErrorUnlessOk(common::CheckAdcChannel("CHANNEL", channel));
      if (words->value.empty()) {
        action = [board = words->board, channel](Session& session) {
          return ShowAdc(session, board, static_cast<uint32_t>(channel));
        };
        return;
      }
      const uint64_t value = ParseNumber(words->value, "VALUE");
      ThrowUsageErrorUnlessOk(common::CheckAdcValue("VALUE", value));
      fleet::v1::SetAdcRequest request;
      request.set_board(words->board);
      request.set_channel(static_cast<uint32_t>(channel));
      request.set_value_u16(static_cast<uint32_t>(value));
      action = [request](Session& session) { return SetAdc(session, request); };
    });
  }
  {
    auto request = std::make_shared<fleet::v1::ResetBoardRequest>();
    auto safe = std::make_shared<bool>(false);
    CLI::App* reset = app.add_subcommand(
        "reset",
        "Reset a board as its reset button would: every program ends, the VM restarts, files stay, "
        "/boot.py and /main.py run again");
    reset->add_option("BOARD", *request->mutable_board(), "Board name")->required();
    reset->add_flag("--safe", *safe,
                    "Safe boot: skip /boot.py and /main.py this once (a board whose main.py hogs it)");
    reset->callback([&action, request, safe] {
      request->set_safe_boot(*safe);
      action = [request = *request](Session& session) { return ResetBoard(session, request); };
    });
  }
}

}  // namespace threadfleet::cli
