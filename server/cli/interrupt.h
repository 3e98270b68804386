// Ctrl-C for fleetctl: a following command (logs -f, events -f, run
// --follow) runs until the user interrupts it, and then fleetctl should end
// at once, quietly, with the shell's usual code for SIGINT (130), not with a
// gRPC shutdown message or a half-destroyed channel.
//
// Example (first thing in main, before any thread exists):
//
//   ExitQuietlyOnInterrupt();

#ifndef THREADFLEET_SERVER_CLI_INTERRUPT_H_
#define THREADFLEET_SERVER_CLI_INTERRUPT_H_

namespace threadfleet::cli {

// Blocks SIGINT in the calling thread (and so in every thread started after
// it) and starts a thread that waits for SIGINT, flushes stdout and ends
// the process with exit code 130. REQUIRES: called before any other thread
// is started (gRPC starts threads when the first channel is made).
void ExitQuietlyOnInterrupt();

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_INTERRUPT_H_
