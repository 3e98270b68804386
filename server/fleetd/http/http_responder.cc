#include "server/fleetd/http/http_responder.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_format.h"

namespace threadfleet::fleetd {

void Exchange::Cancel() {
  std::function<void()> cancel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_ || cancelled_.load()) return;
    cancelled_.store(true);
    cancel = std::move(cancel_);
  }
  if (cancel) cancel();
}

void Exchange::Complete() {
  std::function<void()> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  completed_ = true;
  // Destroyed outside the lock: it may hold the last reference to the
  // responder, whose destructor posts to the queue.
  dropped = std::move(cancel_);
}

void Exchange::OnCancel(std::function<void()> cancel) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;
    if (!cancelled_.load()) {
      cancel_ = std::move(cancel);
      return;
    }
  }
  cancel();
}

ExchangeQueue::ExchangeQueue() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return;
  wake_read_ = fds[0];
  wake_write_ = fds[1];
}

ExchangeQueue::~ExchangeQueue() {
  if (wake_read_ >= 0) ::close(wake_read_);
  if (wake_write_ >= 0) ::close(wake_write_);
}

void ExchangeQueue::Post(ExchangeEvent event) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool was_empty = events_.empty();
  events_.push_back(std::move(event));
  // One byte per batch: a full pipe (EAGAIN) still means "wake up".
  if (was_empty) Wake();
}

void ExchangeQueue::Wake() {
  const char byte = 0;
  (void)!::write(wake_write_, &byte, 1);
}

std::vector<ExchangeEvent> ExchangeQueue::Take() {
  char drain[256];
  while (::read(wake_read_, drain, sizeof drain) > 0) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(events_, {});
}

namespace {

class QueuedResponder final : public HttpResponder {
 public:
  QueuedResponder(std::shared_ptr<Exchange> exchange, std::shared_ptr<ExchangeQueue> queue, size_t max_buffer)
      : exchange_(std::move(exchange)), queue_(std::move(queue)), max_buffer_(max_buffer) {}

  ~QueuedResponder() override {
    if (phase_ == Phase::kDone) return;
    queue_->Post({.exchange = exchange_, .kind = ExchangeEvent::Kind::kDropped});
  }

  void Reply(int status, HttpHeaders headers, std::string body) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kNew) return;
    phase_ = Phase::kDone;
    queue_->Post({.exchange = exchange_,
                  .kind = ExchangeEvent::Kind::kReply,
                  .status = status,
                  .headers = std::move(headers),
                  .bytes = std::move(body)});
  }

  void StartStream(int status, HttpHeaders headers) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kNew) return;
    phase_ = Phase::kStreaming;
    queue_->Post({.exchange = exchange_,
                  .kind = ExchangeEvent::Kind::kStartStream,
                  .status = status,
                  .headers = std::move(headers)});
  }

  bool Write(std::string bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStreaming || exchange_->cancelled()) return false;
    // An empty chunk would end the body: nothing to send.
    if (bytes.empty()) return true;
    std::string chunk = absl::StrFormat("%x\r\n", bytes.size());
    chunk.append(bytes);
    chunk.append("\r\n");
    const size_t buffered =
        exchange_->queued_bytes.fetch_add(chunk.size()) + chunk.size() + exchange_->unsent_bytes.load();
    if (buffered > max_buffer_) {
      phase_ = Phase::kDone;
      queue_->Post({.exchange = exchange_, .kind = ExchangeEvent::Kind::kOverflow});
      return false;
    }
    queue_->Post({.exchange = exchange_, .kind = ExchangeEvent::Kind::kWrite, .bytes = std::move(chunk)});
    return true;
  }

  void Finish() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStreaming) return;
    phase_ = Phase::kDone;
    queue_->Post({.exchange = exchange_, .kind = ExchangeEvent::Kind::kFinish});
  }

  void OnCancel(std::function<void()> cancel) override { exchange_->OnCancel(std::move(cancel)); }

 private:
  enum class Phase { kNew, kStreaming, kDone };

  const std::shared_ptr<Exchange> exchange_;
  const std::shared_ptr<ExchangeQueue> queue_;
  const size_t max_buffer_;
  std::mutex mu_;
  Phase phase_ = Phase::kNew;
};

}  // namespace

std::shared_ptr<HttpResponder> MakeResponder(std::shared_ptr<Exchange> exchange,
                                             std::shared_ptr<ExchangeQueue> queue,
                                             size_t max_stream_buffer_bytes) {
  return std::make_shared<QueuedResponder>(std::move(exchange), std::move(queue), max_stream_buffer_bytes);
}

}  // namespace threadfleet::fleetd
