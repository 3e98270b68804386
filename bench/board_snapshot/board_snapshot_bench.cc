// bench/board_snapshot: the board-side cost of one health snapshot (the
// supervisor part: sup_health + the thread list a WatchHealth message
// carries) with 10 sleeping MicroPython threads, against a baseline run in
// the same process: one bare walk of the live threads doing what the
// snapshot path did per thread before its caches, a CPU clock read and a
// full stack-paint scan (rt_thread_stack_peak_full). The old snapshot did
// that walk three times over, plus the heap walk (gc_info).
//
//   bench_board_snapshot [ITERATIONS]     (cmake --build build/release --target bench_board_snapshot)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "firmware/runtime/mpthreadport.h"
#include "firmware/supervisor/supervisor.h"
}

namespace {

using Clock = std::chrono::steady_clock;

// bench/fleet_scale/ten_sleepers.py
const char kTenSleepers[] =
    "import _thread, time\n"
    "def sleeper():\n"
    "    while True:\n"
    "        time.sleep(3600)\n"
    "for _ in range(9):\n"
    "    _thread.start_new_thread(sleeper, ())\n"
    "sleeper()\n";

sup_thread_info_t threads[SUP_MAX_THREAD_RECORDS];

void Snapshot() {
  sup_health_t health;
  sup_health(&health);
  sup_threads_list(threads, SUP_MAX_THREAD_RECORDS, 0, true);
}

struct Walk {
  size_t peak_sum = 0;
  int64_t cpu_sum = 0;
};

void FullScanOne(rt_thread_t *t, void *ctx) {
  Walk *walk = static_cast<Walk *>(ctx);
  walk->cpu_sum += rt_thread_cpu_ns(t);
  walk->peak_sum += rt_thread_stack_peak_full(t);
}

size_t FullScanWalk() {
  Walk walk;
  rt_sched_lock();
  rt_threads_foreach(FullScanOne, &walk);
  rt_sched_unlock();
  return walk.peak_sum;
}

// Median ns per call of fn over `iterations` calls, in 5 batches.
template <typename Fn>
double MedianNs(int iterations, Fn fn) {
  std::vector<double> batches;
  for (int b = 0; b < 5; b++) {
    auto start = Clock::now();
    for (int i = 0; i < iterations; i++) fn();
    batches.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / iterations);
  }
  std::sort(batches.begin(), batches.end());
  return batches[batches.size() / 2];
}

bool WaitSleeping(size_t want) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    sup_health_t health;
    sup_health(&health);
    if (health.threads_by_state[SUP_THREAD_SLEEPING] == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace

int main(int argc, char **argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 2000;
  if (iterations < 1) iterations = 1;
  sup_config_t config = sup_default_config();
  int marker;
  if (!sup_init(&config, &marker)) return 1;
  sup_program_spec_t spec{};
  spec.name = "ten_sleepers.py";
  spec.source = kTenSleepers;
  spec.source_len = sizeof(kTenSleepers) - 1;
  uint32_t program_id = 0, main_tid = 0;
  char err[128] = "";
  if (sup_program_start(&spec, &program_id, &main_tid, err, sizeof(err)) != 0 || !WaitSleeping(10)) {
    std::fprintf(stderr, "bench_board_snapshot: the 10 sleepers did not start: %s\n", err);
    sup_deinit();
    return 1;
  }

  Snapshot();
  size_t n = sup_threads_list(threads, SUP_MAX_THREAD_RECORDS, 0, false);
  size_t peaks = 0;
  for (size_t i = 0; i < n; i++) peaks += threads[i].stack_peak;
  size_t full_peaks = FullScanWalk();

  volatile size_t sink = 0;
  double base_ns = MedianNs(iterations, [&] { sink = sink + FullScanWalk(); });
  double snap_ns = MedianNs(iterations, Snapshot);
  std::printf("board snapshot, %zu live threads (stack peaks: snapshot %zu B, full scan %zu B)\n", n, peaks,
              full_peaks);
  std::printf("  baseline: full-scan thread walk %10.1f us\n", base_ns / 1000);
  std::printf("  snapshot: sup_health + threads  %10.1f us   ratio %.2fx\n", snap_ns / 1000,
              snap_ns / base_ns);

  sup_program_kill(program_id, -1);
  sup_program_wait(program_id, 5000);
  sup_deinit();
  return peaks == full_peaks ? 0 : 1;
}
