// trainer_state.json: its writer and its schema check.
#include "qkv/io/trainer_state.h"

#include <cmath>
#include <filesystem>

#include "io/checkpoint_layout.h"
#include "qkv/error.h"

namespace qkv::io {
namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& state, const std::string& dir)
      : state_(state), file_(dir + "/trainer_state.json") {
    check(state.is_object(), "expected a JSON object, got {}", state.dump());
  }

  template <class... Args>
  void check(bool ok, fmt::format_string<Args...> what, Args&&... args) const {
    QKV_CHECK(ok,
              "{}: {}; the checkpoint is damaged or was edited — resume from an earlier "
              "checkpoint",
              file_, fmt::format(what, std::forward<Args>(args)...));
  }

  const json& at(const char* key) const {
    check(state_.contains(key), "no '{}'", key);
    return state_.at(key);
  }

  int64_t count(const char* key) const {
    const json& v = at(key);
    check(v.is_number_integer() &&
              (v.is_number_unsigned() ? v.get<uint64_t>() <= INT64_MAX : v.get<int64_t>() >= 0),
          "'{}' is {}, expected a non-negative integer", key, v.dump());
    return v.get<int64_t>();
  }

  double loss_or_infinity(const json& v, const char* key) const {
    check(v.is_null() || (v.is_number() && std::isfinite(v.get<double>())),
          "'{}' is {}, expected a finite number or null", key, v.dump());
    return v.is_null() ? INFINITY : v.get<double>();
  }

  const json& state() const { return state_; }

 private:
  const json& state_;
  std::string file_;
};

}  // namespace

json to_json(const TrainerState& s) {
  return {{"iter", s.iter},
          {"best_val_loss", std::isfinite(s.best_val_loss) ? json(s.best_val_loss) : json()},
          {"last_eval", s.last_eval},
          {"micro_batches", s.micro_batches},
          {"processes", s.processes},
          {"model_kind", enum_name(s.model_kind)},
          {"num_parameters", s.num_parameters},
          {"qkv_version", QKV_VERSION}};
}

TrainerState read_trainer_state(const CheckpointData& checkpoint, const std::string& dir) {
  const Reader r(checkpoint.trainer_state, dir);
  TrainerState s;
  s.iter = r.count("iter");
  // A directory named checkpoint-<step> holds that step; another name (a copy) says nothing.
  if (const auto step = layout::parse_dir_name(std::filesystem::path(dir).filename().string()))
    r.check(s.iter == *step, "'iter' is {}, but the directory holds step {}", s.iter, *step);
  if (checkpoint.manifest_step >= 0)
    r.check(s.iter == checkpoint.manifest_step, "'iter' is {}, but manifest.json records step {}",
            s.iter, checkpoint.manifest_step);
  if (!checkpoint.optimizer.empty())
    r.check(s.iter == checkpoint.optimizer_step,
            "'iter' is {}, but optimizer.safetensors records step {}", s.iter,
            checkpoint.optimizer_step);
  s.micro_batches = r.count("micro_batches");
  s.processes = r.count("processes");
  r.check(s.micro_batches > 0 && s.processes > 0 && s.micro_batches % s.processes == 0,
          "'micro_batches' is {} and 'processes' {}, expected positive integers, the first a "
          "multiple of the second",
          s.micro_batches, s.processes);
  s.best_val_loss = r.loss_or_infinity(r.at("best_val_loss"), "best_val_loss");
  s.last_eval = r.state().value("last_eval", json());
  const json& e = s.last_eval;
  r.check(e.is_null() || (e.is_object() && e.contains("iter") && e.contains("val_loss")),
          "'last_eval' is {}, expected null or an object with 'iter' and 'val_loss'", e.dump());
  if (e.is_object()) {
    r.check(e["iter"].is_number_integer() && e["iter"].get<int64_t>() >= 0 &&
                e["iter"].get<int64_t>() <= s.iter,
            "'last_eval.iter' is {}, expected an integer from 0 to 'iter' ({})", e["iter"].dump(),
            s.iter);
    r.loss_or_infinity(e["val_loss"], "last_eval.val_loss");
    r.check(!e["val_loss"].is_null(), "'last_eval.val_loss' is null, expected a number");
  }
  const json& kind = r.at("model_kind");
  const auto parsed =
      kind.is_string() ? parse_enum<nn::ModelKind>(kind.get<std::string>()) : std::nullopt;
  r.check(parsed.has_value(), "'model_kind' is {}, expected one of: {}", kind.dump(),
          fmt::join(enum_names(nn::ModelKind{}), ", "));
  s.model_kind = *parsed;
  return s;
}

}  // namespace qkv::io
