#include "server/fleetd/health/health_history.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace threadfleet::fleetd {

namespace pb = threadfleet::board::v1;
namespace fleet = threadfleet::fleet::v1;

static_assert(sizeof(HealthHistory::Sample) == 24, "the header states the record sizes");
static_assert(sizeof(HealthHistory::ThreadSample) == 12, "the header states the record sizes");

namespace {

bool IsLive(pb::ThreadState state) {
  return state == pb::THREAD_STATE_RUNNING || state == pb::THREAD_STATE_SLEEPING ||
         state == pb::THREAD_STATE_WAITING_LOCK;
}

uint16_t CentiPercent(uint64_t cpu_us, uint64_t period_us) {
  if (period_us == 0) return 0;
  const double centi = 10000.0 * static_cast<double>(cpu_us) / static_cast<double>(period_us);
  return static_cast<uint16_t>(std::min(centi, 65535.0) + 0.5);
}

}  // namespace

HealthHistory::HealthHistory(Options options)
    : options_(options),
      max_threads_per_sample_(
          static_cast<uint16_t>(std::min<size_t>(options.max_threads_per_sample, UINT16_MAX))) {}

size_t HealthHistory::SeriesBytes(const Series& s) {
  // A name past the small-string buffer has a heap block of its own.
  return sizeof(Series) + (s.name.capacity() > 15 ? s.name.capacity() + 1 : 0);
}

void HealthHistory::AddBytes(Board& b, ptrdiff_t delta) {
  if (delta == 0) return;
  auto node = by_bytes_.extract({b.bytes, &b});
  b.bytes = static_cast<size_t>(static_cast<ptrdiff_t>(b.bytes) + delta);
  total_bytes_ = static_cast<size_t>(static_cast<ptrdiff_t>(total_bytes_) + delta);
  // Reusing the node keeps the snapshot path free of allocation.
  node.value() = {b.bytes, &b};
  by_bytes_.insert(std::move(node));
}

uint16_t HealthHistory::NewSeries(Board& b, const pb::ThreadInfo& t) {
  uint16_t index = kNoSeries;
  if (!b.free_series.empty()) {
    index = b.free_series.back();
    b.free_series.pop_back();
  } else if (b.series.size() < kMaxThreadSeries) {
    index = static_cast<uint16_t>(b.series.size());
    b.series.emplace_back();
  } else {
    return kNoSeries;
  }
  Series& s = b.series[index];
  s.thread_id = t.id();
  s.program_id = t.program_id();
  s.stack_size_bytes = t.stack_size_bytes();
  s.samples = 0;
  s.name = t.name();
  AddBytes(b, static_cast<ptrdiff_t>(SeriesBytes(s)));
  return index;
}

void HealthHistory::Record(absl::string_view board, const pb::HealthSnapshot& snapshot, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end()) {
    it = boards_.emplace(std::string(board), Board{}).first;
    by_bytes_.insert({0, &it->second});
  }
  Board& b = it->second;
  const int64_t now_ms = absl::ToUnixMillis(now);
  DropBefore(b, now_ms - absl::ToInt64Milliseconds(options_.window));

  // A board whose uptime went back restarted: no thread continues.
  const uint64_t uptime = snapshot.uptime_us();
  const bool restarted = b.has_latest && uptime < b.latest_uptime_us;
  if (restarted) b.latest.clear();
  const bool has_previous = b.has_latest && !restarted;
  const uint64_t period = has_previous ? uptime - b.latest_uptime_us : 0;

  b.next.clear();
  uint16_t recorded = 0;
  for (const pb::ThreadInfo& t : snapshot.threads()) {
    if (!IsLive(t.state())) continue;
    if (recorded == max_threads_per_sample_) {
      ++threads_not_recorded_;
      continue;
    }
    auto prev = std::lower_bound(b.latest.begin(), b.latest.end(), t.id(),
                                 [](const LatestThread& l, uint32_t id) { return l.thread_id < id; });
    const bool continues = prev != b.latest.end() && prev->thread_id == t.id();
    uint16_t cpu_centi = 0;
    uint16_t series = kNoSeries;
    if (continues) {
      series = prev->series;
      const uint64_t spent = t.cpu_time_us() >= prev->cpu_time_us ? t.cpu_time_us() - prev->cpu_time_us : 0;
      cpu_centi = CentiPercent(spent, period);
    } else if (has_previous && t.start_time_us() >= b.latest_uptime_us) {
      cpu_centi = CentiPercent(t.cpu_time_us(), period);  // started within the period
    } else if (uptime > t.start_time_us()) {
      cpu_centi = CentiPercent(t.cpu_time_us(), uptime - t.start_time_us());  // its life so far
    }
    if (series == kNoSeries) series = NewSeries(b, t);
    if (series == kNoSeries) {
      ++threads_not_recorded_;
      continue;
    }
    Series& s = b.series[series];
    if (s.name != t.name()) {  // fleet.thread_name() renamed it
      const size_t before = SeriesBytes(s);
      s.name = t.name();
      AddBytes(b, static_cast<ptrdiff_t>(SeriesBytes(s)) - static_cast<ptrdiff_t>(before));
    }
    ++s.samples;
    b.threads.push_back({.series = series,
                         .cpu_centi = cpu_centi,
                         .stack_used_bytes = t.stack_used_bytes(),
                         .stack_peak_bytes = t.stack_peak_bytes()});
    b.next.push_back({.thread_id = t.id(), .series = series, .cpu_time_us = t.cpu_time_us()});
    ++recorded;
  }
  std::sort(b.next.begin(), b.next.end(),
            [](const LatestThread& x, const LatestThread& y) { return x.thread_id < y.thread_id; });
  std::swap(b.latest, b.next);
  b.latest_uptime_us = uptime;
  b.has_latest = true;

  b.samples.push_back({.time_ms = now_ms,
                       .heap_used_bytes = snapshot.heap().used_bytes(),
                       .heap_total_bytes = snapshot.heap().total_bytes(),
                       .cpu_percent = snapshot.cpu_usage_percent(),
                       .thread_count = recorded});
  AddBytes(b, static_cast<ptrdiff_t>(sizeof(Sample) + recorded * sizeof(ThreadSample)));
  EnforceBudget();
}

void HealthHistory::DropOldest(Board& b) {
  const Sample& oldest = b.samples.front();
  for (uint16_t i = 0; i < oldest.thread_count; ++i) {
    const uint16_t index = b.threads.front().series;
    b.threads.pop_front();
    Series& s = b.series[index];
    if (--s.samples > 0) continue;
    AddBytes(b, -static_cast<ptrdiff_t>(SeriesBytes(s)));
    s.name = std::string();
    b.free_series.push_back(index);
  }
  AddBytes(b, -static_cast<ptrdiff_t>(sizeof(Sample) + oldest.thread_count * sizeof(ThreadSample)));
  b.samples.pop_front();
  // The latest sample is gone with its series (only it lists the latest
  // threads, so only now can theirs be freed): those threads keep their CPU
  // deltas but start new series.
  if (b.samples.empty()) {
    for (LatestThread& l : b.latest) l.series = kNoSeries;
  }
}

void HealthHistory::DropBefore(Board& b, int64_t time_ms) {
  while (!b.samples.empty() && b.samples.front().time_ms < time_ms) DropOldest(b);
}

void HealthHistory::EnforceBudget() {
  while (total_bytes_ > options_.max_bytes && !by_bytes_.empty()) {
    Board& largest = *by_bytes_.rbegin()->second;
    if (largest.samples.empty()) return;
    DropOldest(largest);
  }
}

void HealthHistory::RemoveBoard(absl::string_view board) {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end()) return;
  by_bytes_.erase({it->second.bytes, &it->second});
  total_bytes_ -= it->second.bytes;
  boards_.erase(it);
}

void HealthHistory::Query(absl::string_view board, absl::Duration window, absl::Time now,
                          fleet::GetHealthHistoryResponse& out) {
  out.Clear();
  out.set_board(std::string(board));
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end()) return;
  Board& b = it->second;
  const int64_t now_ms = absl::ToUnixMillis(now);
  DropBefore(b, now_ms - absl::ToInt64Milliseconds(options_.window));
  const int64_t from_ms = window <= absl::ZeroDuration() || window > options_.window
                              ? std::numeric_limits<int64_t>::min()
                              : now_ms - absl::ToInt64Milliseconds(window);

  // Skip the samples before the window, and their threads.
  size_t first = 0;
  size_t thread_pos = 0;
  while (first < b.samples.size() && b.samples[first].time_ms < from_ms) {
    thread_pos += b.samples[first].thread_count;
    ++first;
  }
  const size_t n = b.samples.size() - first;
  if (n == 0) return;
  const int64_t start_ms = b.samples[first].time_ms;
  out.set_start_time_ms(start_ms);
  out.mutable_offset_ms()->Reserve(static_cast<int>(n));
  out.mutable_heap_used_bytes()->Reserve(static_cast<int>(n));
  out.mutable_heap_total_bytes()->Reserve(static_cast<int>(n));
  out.mutable_cpu_percent()->Reserve(static_cast<int>(n));
  // Series index -> its ThreadHistory in `out`.
  std::vector<int> out_index(b.series.size(), -1);
  for (size_t i = 0; i < n; ++i) {
    const Sample& s = b.samples[first + i];
    out.add_offset_ms(static_cast<uint32_t>(s.time_ms - start_ms));
    out.add_heap_used_bytes(s.heap_used_bytes);
    out.add_heap_total_bytes(s.heap_total_bytes);
    out.add_cpu_percent(s.cpu_percent);
    for (uint16_t k = 0; k < s.thread_count; ++k) {
      const ThreadSample& t = b.threads[thread_pos++];
      int& index = out_index[t.series];
      if (index < 0) {
        index = out.threads_size();
        const Series& series = b.series[t.series];
        fleet::ThreadHistory* h = out.add_threads();
        h->set_thread_id(series.thread_id);
        h->set_name(series.name);
        h->set_program_id(series.program_id);
        h->set_stack_size_bytes(series.stack_size_bytes);
        h->set_first_sample(static_cast<uint32_t>(i));
      }
      fleet::ThreadHistory* h = out.mutable_threads(index);
      h->add_cpu_percent(static_cast<float>(t.cpu_centi) / 100.0f);
      h->add_stack_used_bytes(t.stack_used_bytes);
      h->add_stack_peak_bytes(t.stack_peak_bytes);
    }
  }
  // Series appear in order of their first sample; within one, by id.
  std::stable_sort(out.mutable_threads()->pointer_begin(), out.mutable_threads()->pointer_end(),
                   [](const fleet::ThreadHistory* x, const fleet::ThreadHistory* y) {
                     return std::pair(x->first_sample(), x->thread_id()) <
                            std::pair(y->first_sample(), y->thread_id());
                   });
}

size_t HealthHistory::bytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

size_t HealthHistory::samples(absl::string_view board) const {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  return it == boards_.end() ? 0 : it->second.samples.size();
}

uint64_t HealthHistory::threads_not_recorded_total() const {
  absl::MutexLock lock(&mu_);
  return threads_not_recorded_;
}

}  // namespace threadfleet::fleetd
