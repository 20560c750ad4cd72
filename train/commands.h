// The subcommands of `qkv`. Each registers its options on the app and, when chosen, sets `run`
// to the function that does the work and returns the exit code.
#pragma once

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "qkv/environment.h"
#include "qkv/runtime.h"

namespace qkv::parallel {
class Distributed;
}

namespace qkv::cli {

// env: read once by main, which outlives every command. group: set by `qkv train` once it has
// joined the processes it was launched with, so that main's error path can end them all.
void add_train(CLI::App& app, std::function<int()>& run, const Environment& env,
               const parallel::Distributed*& group);
void add_eval(CLI::App& app, std::function<int()>& run, const Environment& env);
void add_info(CLI::App& app, std::function<int()>& run);
void add_sample(CLI::App& app, std::function<int()>& run, const Environment& env);
void add_data(CLI::App& app, std::function<int()>& run);
void add_plot(CLI::App& app, std::function<int()>& run);
void add_attention(CLI::App& app, std::function<int()>& run);
void add_serve(CLI::App& app, std::function<int()>& run, const Environment& env);

// Makes `work` what qkv runs when cmd is the subcommand given.
inline void on_run(CLI::App& cmd, std::function<int()>& run, std::function<int()> work) {
  cmd.callback([&run, work = std::move(work)] { run = work; });
}

// An integer option's lower bound, said plainly: CLI11's range validators print their upper
// bound, DBL_MAX, in all its 309 digits, and an unsigned option would take -1 as 2^64-1.
inline CLI::Validator between(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        int64_t x = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec == std::errc() && end == v.data() + v.size() && x >= lo && x <= hi) return "";
        return fmt::format("expected a whole number from {} to {}, got '{}'", lo, hi, v);
      },
      "");
}
inline CLI::Validator at_least(int64_t lo) { return between(lo, INT64_MAX); }

// --precision auto|fp32|bf16 (runtime.h), for the commands that run a model from a checkpoint.
inline void add_precision_option(CLI::App& cmd, std::string& setting) {
  const CLI::Validator one_of(
      [](std::string& v) {
        return parse_enum<PrecisionSetting>(v) ? std::string()
                                               : "expected auto, fp32 or bf16, got '" + v + "'";
      },
      "");
  cmd.add_option("--precision", setting,
                 "What GEMMs compute in: auto (default: bf16 where the CPU has AVX512_BF16, "
                 "else fp32), fp32, or bf16")
      ->type_name("P")
      ->check(one_of);
}
// What an --precision setting the option checked means on this CPU.
inline Precision chosen_precision(const std::string& setting, const Environment& env) {
  const auto s = parse_enum<PrecisionSetting>(setting).value_or(PrecisionSetting::automatic);
  return choose_precision(s, "--precision", bf16_support(env)).precision;
}

// --length-penalty A (generate::BeamOptions) for the commands that run beam search.
inline void add_length_penalty_option(CLI::App& cmd, double& alpha) {
  const CLI::Validator at_least_zero(
      [](std::string& v) {
        char* end = nullptr;
        const double a = std::strtod(v.c_str(), &end);
        const bool ok = !v.empty() && *end == '\0' && std::isfinite(a) && a >= 0;
        return ok ? std::string() : "expected a number >= 0, got '" + v + "'";
      },
      "");
  cmd.add_option("--length-penalty", alpha,
                 "encoder_decoder: beam search ranks outputs by log-probability / length^A, "
                 "the length counting <eos>: 0 = log-probability alone (favours short outputs), "
                 "1 = per token (default " +
                     fmt::format("{}", alpha) + ")")
      ->type_name("A")
      ->check(at_least_zero);
}

}  // namespace qkv::cli
