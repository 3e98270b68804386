#include "server/fleetd/links/name_resolver.h"

#include <netdb.h>
#include <pthread.h>

#include <cstring>
#include <deque>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace threadfleet::fleetd {

absl::StatusOr<SocketAddress> SystemResolve(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve \"", host, "\": ", gai_strerror(rc)));
  }
  SocketAddress out;
  std::memcpy(&out.address, found->ai_addr, found->ai_addrlen);
  out.size = found->ai_addrlen;
  freeaddrinfo(found);
  return out;
}

// Shared by the resolver and its detached thread, so that either may go first.
struct NameResolver::State {
  struct Job {
    uint64_t tag;
    std::string host;
    std::string port;
  };

  State(ResolveFn r, DoneFn d) : resolve(std::move(r)), on_done(std::move(d)) {}

  const ResolveFn resolve;
  absl::Mutex mu;
  // Held while an answer is delivered: the destructor takes it to know that
  // none is under way and none will follow.
  absl::Mutex deliver_mu;
  DoneFn on_done ABSL_GUARDED_BY(deliver_mu);
  std::deque<Job> jobs ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;

  void Run() {
    pthread_setname_np(pthread_self(), "name-resolver");
    while (true) {
      Job job;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->stopping || !s->jobs.empty(); },
            this));
        if (stopping) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      absl::StatusOr<SocketAddress> address = resolve(job.host, job.port);
      absl::MutexLock lock(&deliver_mu);
      if (on_done) on_done(job.tag, std::move(address));
    }
  }
};

NameResolver::NameResolver(ResolveFn resolve, DoneFn on_done)
    : state_(std::make_shared<State>(std::move(resolve), std::move(on_done))) {
  std::thread([state = state_] { state->Run(); }).detach();
}

NameResolver::~NameResolver() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  absl::MutexLock lock(&state_->deliver_mu);
  state_->on_done = nullptr;
}

void NameResolver::Resolve(uint64_t tag, std::string host, std::string port) {
  absl::MutexLock lock(&state_->mu);
  state_->jobs.push_back(State::Job{tag, std::move(host), std::move(port)});
}

}  // namespace threadfleet::fleetd
