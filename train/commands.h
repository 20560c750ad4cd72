// The subcommands of `qkv`. Each registers its options on the app and, when chosen, sets `run`
// to the function that does the work and returns the exit code.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace qkv::train {

void add_train(CLI::App& app, std::function<int()>& run);
void add_eval(CLI::App& app, std::function<int()>& run);
void add_info(CLI::App& app, std::function<int()>& run);
void add_sample(CLI::App& app, std::function<int()>& run);
void add_data(CLI::App& app, std::function<int()>& run);
void add_plot(CLI::App& app, std::function<int()>& run);
void add_attention(CLI::App& app, std::function<int()>& run);

}  // namespace qkv::train
