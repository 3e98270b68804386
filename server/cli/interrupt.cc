#include "server/cli/interrupt.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace threadfleet::cli {

void ExitQuietlyOnInterrupt() {
  sigset_t interrupt;
  sigemptyset(&interrupt);
  sigaddset(&interrupt, SIGINT);
  pthread_sigmask(SIG_BLOCK, &interrupt, nullptr);
  std::thread([interrupt] {
    int signal_number = 0;
    if (sigwait(&interrupt, &signal_number) != 0) return;
    std::fflush(stdout);
    // _Exit: no static destructors racing the threads gRPC still runs.
    std::_Exit(130);
  }).detach();
}

}  // namespace threadfleet::cli
