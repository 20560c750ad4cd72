// qkv serve's whole life: bind, say where, serve until Ctrl-C or SIGTERM, stop.
#pragma once

#include "server.h"

namespace qkv::serve {

// Returns the exit code once a signal stopped the server. Throws qkv::Error when it cannot
// start (runs_dir not a directory, the address taken).
int serve(const ServeOptions& options);

}  // namespace qkv::serve
