#include "server/fleetd/jobs/run_notifier.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace threadfleet::fleetd::jobs {

namespace pb = threadfleet::fleet::v1;

namespace internal {
namespace {

struct Notification {
  NotifySpec spec;
  pb::Run run;
};

// "http://host:port" and "/path?query" of a URL ParseJobSpec accepted.
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  constexpr absl::string_view kScheme = "http://";
  const size_t path_start = url.find('/', kScheme.size());
  if (path_start == std::string::npos) return {url, "/"};
  return {url.substr(0, path_start), url.substr(path_start)};
}

std::chrono::microseconds Micros(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

}  // namespace

class RunNotifierState {
 public:
  explicit RunNotifierState(RunNotifierOptions options) : options_(std::move(options)) {
    if (!options_.log) {
      options_.log = [](absl::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      };
    }
    worker_ = std::thread([this] { Work(); });
  }

  void Notify(const NotifySpec& spec, const pb::Run& run) {
    const absl::string_view state = RunEndStateName(run.state());
    if (state.empty() || std::find(spec.on.begin(), spec.on.end(), state) == spec.on.end()) return;
    std::string dropped_line;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (queue_.size() >= options_.max_queued && !queue_.empty()) {
        dropped_line = Describe(queue_.front()) + " outcome=dropped reason=\"queue full\"";
        queue_.pop_front();
        ++stats_.dropped;
      }
      queue_.push_back(Notification{spec, run});
    }
    if (!dropped_line.empty()) options_.log(dropped_line);
  }

  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      // Closes the socket of a POST under way, so the worker returns now.
      if (active_client_ != nullptr) active_client_->stop();
    }
    if (worker_.joinable()) worker_.join();
  }

  RunNotifier::Stats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  static std::string Describe(const Notification& n) {
    return absl::StrCat("fleetd: notify job=", n.run.job_name(), " run=", n.run.id(),
                        " state=", RunEndStateName(n.run.state()), " url=", n.spec.url);
  }

  void Work() {
    while (true) {
      Notification next;
      size_t left_at_shutdown = 0;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &RunNotifierState::HasWorkOrStops));
        if (stopping_) {
          left_at_shutdown = queue_.size();
          stats_.dropped += left_at_shutdown;
          queue_.clear();
        } else {
          next = std::move(queue_.front());
          queue_.pop_front();
        }
      }
      if (next.spec.url.empty()) {
        if (left_at_shutdown > 0) {
          options_.log(absl::StrCat("fleetd: notify outcome=dropped count=", left_at_shutdown,
                                    " reason=\"fleetd is shutting down\""));
        }
        return;
      }
      Deliver(next);
    }
  }

  bool HasWorkOrStops() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }

  // POSTs until a 2xx answer, the retries are spent or Shutdown; logs the
  // outcome.
  void Deliver(const Notification& n) {
    std::string body;
    google::protobuf::util::JsonPrintOptions json_options;
    if (!google::protobuf::util::MessageToJsonString(n.run, &body, json_options).ok()) {
      Finish(n, false, "outcome=failed error=\"run not convertible to JSON\" attempts=0");
      return;
    }
    const auto [origin, path] = SplitUrl(n.spec.url);
    absl::Duration backoff = options_.first_backoff;
    std::string last_error;
    const int attempts = 1 + n.spec.retries;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (attempt > 1) {
        absl::MutexLock lock(&mu_);
        // Waits out the backoff unless Shutdown comes first.
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff)) break;
        backoff *= 2;
      }
      int status = 0;
      last_error = Post(origin, path, body, n.spec.timeout, status);
      if (last_error.empty()) {
        Finish(n, true, absl::StrCat("outcome=delivered status=", status, " attempts=", attempt));
        return;
      }
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    Finish(n, false, absl::StrCat("outcome=failed error=\"", last_error, "\" attempts=", attempts));
  }

  // One POST; "" when answered 2xx (`status` set), else what went wrong.
  std::string Post(const std::string& origin, const std::string& path, const std::string& body,
                   absl::Duration timeout, int& status) {
    std::unique_ptr<httplib::Client> client;
    try {
      client = std::make_unique<httplib::Client>(origin);
    } catch (const std::exception& e) {
      return absl::StrCat("bad url: ", e.what());
    }
    client->set_connection_timeout(Micros(timeout));
    client->set_read_timeout(Micros(timeout));
    client->set_write_timeout(Micros(timeout));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return "fleetd is shutting down";
      active_client_ = client.get();
    }
    httplib::Result result = client->Post(path, body, "application/json");
    {
      absl::MutexLock lock(&mu_);
      active_client_ = nullptr;
    }
    if (!result) return absl::StrCat("no answer: ", httplib::to_string(result.error()));
    status = result->status;
    if (status < 200 || status > 299) return absl::StrCat("answered ", status);
    return "";
  }

  void Finish(const Notification& n, bool delivered, absl::string_view outcome) {
    {
      absl::MutexLock lock(&mu_);
      ++(delivered ? stats_.delivered : stats_.failed);
    }
    options_.log(absl::StrCat(Describe(n), " ", outcome));
  }

  RunNotifierOptions options_;
  mutable absl::Mutex mu_;
  std::deque<Notification> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The client of the POST under way, for Shutdown to abort; null between.
  httplib::Client* active_client_ ABSL_GUARDED_BY(mu_) = nullptr;
  RunNotifier::Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace internal

RunNotifier::RunNotifier(RunNotifierOptions options)
    : state_(std::make_unique<internal::RunNotifierState>(std::move(options))) {}

RunNotifier::~RunNotifier() { Shutdown(); }

void RunNotifier::Notify(const NotifySpec& spec, const pb::Run& run) { state_->Notify(spec, run); }

void RunNotifier::Shutdown() { state_->Shutdown(); }

RunNotifier::Stats RunNotifier::stats() const { return state_->stats(); }

absl::string_view RunEndStateName(pb::RunState state) {
  switch (state) {
    case pb::RUN_STATE_PASSED:
      return "passed";
    case pb::RUN_STATE_FAILED:
      return "failed";
    case pb::RUN_STATE_ERROR:
      return "error";
    case pb::RUN_STATE_CANCELLED:
      return "cancelled";
    default:
      return "";
  }
}

}  // namespace threadfleet::fleetd::jobs
