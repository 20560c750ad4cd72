// `qkv serve [RUNS_DIR]`: the local page and JSON API over a directory of runs (server.h).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace qkv::serve {

void add_serve(CLI::App& app, std::function<int()>& run);

}  // namespace qkv::serve
