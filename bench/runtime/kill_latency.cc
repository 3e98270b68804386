// bench/runtime kill latency: how long from sup_thread_kill() until the
// thread has ended, for a thread busy-looping, sleeping, blocked on a lock,
// and swallowing exceptions with `except Exception:`. Upstream MicroPython
// cannot kill a thread at all, so there is no baseline to divide by; the
// target is < 1 ms on the board.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "firmware/supervisor/supervisor.h"
}

namespace {

struct Case {
  const char *name;
  const char *body;  // the victim thread's function body
};

const Case kCases[] = {
    {"busy loop", "    x = 0\n    while True:\n        x += 1\n"},
    {"sleep(3600)", "    time.sleep(3600)\n"},
    {"lock held forever", "    held.acquire()\n"},
    {"except Exception",
     "    while True:\n        try:\n            time.sleep(3600)\n"
     "        except Exception:\n            pass\n"},
};

std::string Program(const Case &c) {
  return std::string(
             "import _thread, time\nheld = _thread.allocate_lock()\nheld.acquire()\n"
             "def victim():\n") +
         c.body + "_thread.start_new_thread(victim, ())\ntime.sleep(3600)\n";
}

bool WaitState(uint32_t tid, sup_thread_state_t want, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  sup_thread_info_t info;
  while (std::chrono::steady_clock::now() < deadline) {
    if (sup_thread_get(tid, &info) && info.state == want) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char **argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 30;
  sup_config_t config = sup_default_config();
  int marker;
  if (!sup_init(&config, &marker)) return 1;
  std::printf("bench/runtime kill latency (%d kills per case; target < 1 ms)\n", rounds);
  for (const Case &c : kCases) {
    std::vector<double> latencies_us;
    std::string source = Program(c);
    for (int i = 0; i < rounds; i++) {
      uint32_t program, main_tid;
      char err[128];
      sup_program_spec_t spec = {"kill_bench.py", source.c_str(), source.size(), nullptr, 0};
      if (sup_program_start(&spec, &program, &main_tid, err, sizeof err) != 0) {
        std::fprintf(stderr, "start failed: %s\n", err);
        return 1;
      }
      uint32_t victim = main_tid + 1;
      sup_thread_state_t running = c.body[4] == 'x'   ? SUP_THREAD_RUNNING
                                   : c.body[4] == 'h' ? SUP_THREAD_WAITING_LOCK
                                                      : SUP_THREAD_SLEEPING;
      if (!WaitState(victim, running, 5000)) {
        std::fprintf(stderr, "%s: victim never reached its state\n", c.name);
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      sup_health_t health;
      sup_health(&health);
      int64_t asked_us = health.uptime_us;
      sup_thread_kill(victim, -1);
      if (!WaitState(victim, SUP_THREAD_KILLED, 5000)) {
        std::fprintf(stderr, "%s: victim not killed\n", c.name);
        return 1;
      }
      sup_thread_info_t info;
      sup_thread_get(victim, &info);
      latencies_us.push_back(static_cast<double>(info.end_us - asked_us));
      sup_program_kill(program, -1);
      sup_program_wait(program, 5000);
    }
    std::printf("  %-18s p50=%7.1f us  p99=%7.1f us\n", c.name, Percentile(latencies_us, 0.5),
                Percentile(latencies_us, 0.99));
  }
  sup_deinit();
  return 0;
}
