// What a program sees of the board it runs on: `sys.platform`,
// `sys.implementation._machine` and `os.uname()` say what the board's profile
// (board_profile.h) says, as the real port's firmware does.
//
// Upstream builds these from compile-time constants into read-only objects,
// and one fleetboard binary simulates every profile. So the port installs its
// own `sys` and `os` modules in sys.modules: each holds all of upstream's
// attributes (whatever config flags switched on), with the identity ones
// replaced. `import sys` finds sys.modules first, as it does for every module.
// sys.path and the other mutable sys attributes stay upstream's (the module
// delegates them), so the import machinery and programs share one sys.path.
#ifndef THREADFLEET_RUNTIME_BOARD_IDENTITY_H
#define THREADFLEET_RUNTIME_BOARD_IDENTITY_H

// Installs the profile's `sys` (also as `usys`) and `os` modules.
// REQUIRES: inside the VM (GIL held), after mp_init; called again after every
// mp_init (a new VM has new sys.modules).
void rt_board_identity_install(void);

#endif  // THREADFLEET_RUNTIME_BOARD_IDENTITY_H
