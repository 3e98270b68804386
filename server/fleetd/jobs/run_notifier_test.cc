#include "server/fleetd/jobs/run_notifier.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace pb = threadfleet::fleet::v1;
using ::testing::HasSubstr;

// Generous bounds for waits that end as soon as what they wait for happens.
constexpr absl::Duration kPatience = absl::Seconds(30);

// A loopback HTTP receiver: answers each request with the next status of
// its script, or never answers (kSilent) and holds the connection open.
class HookReceiver {
 public:
  static constexpr int kSilent = 0;

  explicit HookReceiver(std::vector<int> statuses) : statuses_(statuses.begin(), statuses.end()) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listener_, 8), 0);
    socklen_t len = sizeof(addr);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HookReceiver() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
    for (int fd : held_) close(fd);
    close(listener_);
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/hook"); }

  struct Request {
    std::string head;
    std::string body;
  };
  // Waits (bounded) until `n` requests arrived; returns those that did.
  std::vector<Request> WaitForRequests(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return requests_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), kPatience);
    return requests_;
  }
  std::vector<Request> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stop_;
  }

  void Serve() {
    // Bounded: each poll waits at most 50 ms, and the destructor stops it.
    while (!Stopping()) {
      pollfd pfd{listener_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      Request request;
      if (!Read(fd, request)) {
        close(fd);
        continue;
      }
      int status = kSilent;
      {
        absl::MutexLock lock(&mu_);
        requests_.push_back(request);
        if (!statuses_.empty()) {
          status = statuses_.front();
          statuses_.pop_front();
        }
      }
      if (status == kSilent) {
        held_.push_back(fd);
        continue;
      }
      const std::string answer =
          absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      (void)!write(fd, answer.data(), answer.size());
      close(fd);
    }
  }

  // Reads a head and a Content-Length body; false on EOF, error or 10 s of
  // silence.
  static bool Read(int fd, Request& request) {
    std::string data;
    size_t body_bytes = 0;
    size_t head_end = std::string::npos;
    for (int reads = 0; reads < 1000; ++reads) {
      if (head_end != std::string::npos && data.size() >= head_end + 4 + body_bytes) {
        request.head = data.substr(0, head_end);
        request.body = data.substr(head_end + 4, body_bytes);
        return true;
      }
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, 10000) <= 0) return false;
      char buffer[4096];
      const ssize_t got = read(fd, buffer, sizeof(buffer));
      if (got <= 0) return false;
      data.append(buffer, static_cast<size_t>(got));
      if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
        const std::string lower = absl::AsciiStrToLower(data.substr(0, head_end));
        const size_t at = lower.find("content-length:");
        if (at != std::string::npos) {
          const size_t eol = lower.find("\r\n", at);
          (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(lower.substr(at + 15, eol - at - 15)),
                                 &body_bytes);
        }
      }
    }
    return false;
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<int> held_;  // the serving thread's, until the destructor
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<int> statuses_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
};

// Collects the notifier's log lines.
class LogLines {
 public:
  std::function<void(absl::string_view)> sink() {
    return [this](absl::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    };
  }
  // Waits (bounded) for a line containing `text`; returns it or "".
  std::string WaitFor(absl::string_view text) {
    absl::MutexLock lock(&mu_);
    std::string found;
    auto has = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& line : lines_) {
        if (absl::StrContains(line, text)) {
          found = line;
          return true;
        }
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&has), kPatience);
    return found;
  }
  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

pb::Run EndedRun(uint64_t id, pb::RunState state) {
  pb::Run run;
  run.set_id(id);
  run.set_job_name("seed-smoke");
  run.set_state(state);
  run.set_message("board b02: steps[2].expect.output did not match");
  pb::BoardResult* result = run.add_results();
  result->set_board("b02");
  return run;
}

NotifySpec Spec(const std::string& url, int retries, absl::Duration timeout) {
  return NotifySpec{
      .url = url, .on = {"passed", "failed", "error", "cancelled"}, .timeout = timeout, .retries = retries};
}

RunNotifierOptions Options(LogLines& log) {
  return RunNotifierOptions{.max_queued = 16, .first_backoff = absl::Milliseconds(20), .log = log.sink()};
}

TEST(RunNotifierTest, PostsTheRunAsJsonAndRetriesAfterAServerError) {
  HookReceiver receiver({500, 200});
  LogLines log;
  RunNotifier notifier(Options(log));

  notifier.Notify(Spec(receiver.url(), 2, absl::Seconds(10)), EndedRun(42, pb::RUN_STATE_FAILED));

  const std::string line = log.WaitFor("outcome=");
  EXPECT_THAT(line, HasSubstr("fleetd: notify job=seed-smoke run=42 state=failed url=" + receiver.url()));
  EXPECT_THAT(line, HasSubstr("outcome=delivered status=200 attempts=2"));
  const std::vector<HookReceiver::Request> requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const HookReceiver::Request& request : requests) {
    EXPECT_THAT(request.head, ::testing::StartsWith("POST /hook HTTP/1.1"));
    EXPECT_THAT(absl::AsciiStrToLower(request.head), HasSubstr("content-type: application/json"));
    pb::Run posted;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(request.body, &posted).ok()) << request.body;
    EXPECT_EQ(posted.id(), 42u);
    EXPECT_EQ(posted.job_name(), "seed-smoke");
    EXPECT_EQ(posted.state(), pb::RUN_STATE_FAILED);
    ASSERT_EQ(posted.results_size(), 1);
    EXPECT_EQ(posted.results(0).board(), "b02");
  }
  EXPECT_EQ(notifier.stats().delivered, 1u);
}

TEST(RunNotifierTest, SilentReceiverTimesOutAndEveryRetryIsSpent) {
  HookReceiver receiver({HookReceiver::kSilent, HookReceiver::kSilent});
  LogLines log;
  RunNotifier notifier(Options(log));

  notifier.Notify(Spec(receiver.url(), 1, absl::Milliseconds(200)), EndedRun(7, pb::RUN_STATE_ERROR));

  const std::string line = log.WaitFor("outcome=");
  EXPECT_THAT(line, HasSubstr("run=7 state=error"));
  EXPECT_THAT(line, HasSubstr("outcome=failed"));
  EXPECT_THAT(line, HasSubstr("attempts=2"));
  EXPECT_EQ(receiver.requests().size(), 2u);
  EXPECT_EQ(notifier.stats().failed, 1u);
}

TEST(RunNotifierTest, RefusedConnectionFailsAfterTheRetries) {
  int port = 0;
  {
    HookReceiver closed({});
    port = std::stoi(closed.url().substr(closed.url().rfind(':') + 1));
  }
  LogLines log;
  RunNotifier notifier(Options(log));

  notifier.Notify(Spec(absl::StrCat("http://127.0.0.1:", port, "/hook"), 2, absl::Seconds(5)),
                  EndedRun(8, pb::RUN_STATE_PASSED));

  EXPECT_THAT(log.WaitFor("outcome="), HasSubstr("outcome=failed error=\"no answer: "));
  EXPECT_THAT(log.WaitFor("outcome="), HasSubstr("attempts=3"));
}

TEST(RunNotifierTest, OnlyTheStatesTheSpecNamesAreSent) {
  HookReceiver receiver({200});
  LogLines log;
  RunNotifier notifier(Options(log));
  NotifySpec spec = Spec(receiver.url(), 0, absl::Seconds(10));
  spec.on = {"failed"};

  notifier.Notify(spec, EndedRun(1, pb::RUN_STATE_PASSED));
  notifier.Notify(spec, EndedRun(2, pb::RUN_STATE_RUNNING));
  notifier.Notify(spec, EndedRun(3, pb::RUN_STATE_FAILED));

  EXPECT_THAT(log.WaitFor("outcome="), HasSubstr("run=3 state=failed"));
  notifier.Shutdown();
  ASSERT_EQ(receiver.requests().size(), 1u);
  EXPECT_EQ(log.lines().size(), 1u);
}

TEST(RunNotifierTest, FullQueueDropsTheOldestAndShutdownAbandonsAHangingPost) {
  HookReceiver receiver({HookReceiver::kSilent});
  LogLines log;
  RunNotifierOptions options = Options(log);
  options.max_queued = 1;
  RunNotifier notifier(options);
  const NotifySpec spec = Spec(receiver.url(), 0, absl::Minutes(1));

  notifier.Notify(spec, EndedRun(1, pb::RUN_STATE_FAILED));
  ASSERT_EQ(receiver.WaitForRequests(1).size(), 1u);  // run 1's POST hangs
  notifier.Notify(spec, EndedRun(2, pb::RUN_STATE_FAILED));
  notifier.Notify(spec, EndedRun(3, pb::RUN_STATE_FAILED));

  EXPECT_THAT(log.WaitFor("reason=\"queue full\""), HasSubstr("run=2"));
  notifier.Shutdown();
  EXPECT_THAT(log.WaitFor("reason=\"fleetd is shutting down\""), HasSubstr("count=1"));
  EXPECT_EQ(notifier.stats().dropped, 2u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  notifier.Notify(spec, EndedRun(4, pb::RUN_STATE_FAILED));
  EXPECT_EQ(receiver.requests().size(), 1u);
}

TEST(RunNotifierTest, EndStateNamesAreTheSpecsWords) {
  EXPECT_EQ(RunEndStateName(pb::RUN_STATE_PASSED), "passed");
  EXPECT_EQ(RunEndStateName(pb::RUN_STATE_FAILED), "failed");
  EXPECT_EQ(RunEndStateName(pb::RUN_STATE_ERROR), "error");
  EXPECT_EQ(RunEndStateName(pb::RUN_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(RunEndStateName(pb::RUN_STATE_RUNNING), "");
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
