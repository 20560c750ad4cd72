// `qkv info`: what a run or checkpoint holds, verified, without loading any data.
#include <cmath>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/trainer_state.h"
#include "qkv/load.h"

namespace qkv::cli {

void add_info(CLI::App& app, std::function<int()>& run) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "Show what a run or checkpoint holds (verifies it)");
  cmd->add_option("checkpoint", *path, "Run directory or checkpoint directory")->required();
  on_run(*cmd, run, [path]() -> int {
    const std::string dir = io::resolve_checkpoint(*path);
    const io::CheckpointData ck = io::load_checkpoint(dir);
    // The weights must fit the model the config describes, as they must for every other use.
    const io::Config c = load::load_model(ck, dir).config;
    int64_t params = 0;
    for (const auto& [name, t] : ck.model) params += t.numel();
    const io::TrainerState s = io::read_trainer_state(ck, dir);
    auto loss = [](double v) {
      return std::isfinite(v) ? fmt::format("{:.4f}", v) : std::string("-");
    };
    fmt::print("checkpoint   {} (verified against its manifest)\n", dir);
    const nn::ModelConfig& m = c.model;
    fmt::print(
        "model        {}: {} layers, {} heads, {} embd, block {}, {} positions, {}-{}, {}{}{}{}"
        "{}\n",
        enum_name(m.kind), m.n_layer, m.n_head, m.n_embd, m.block_size, enum_name(m.pos_encoding),
        enum_name(m.norm), m.norm_type == nn::NormType::rmsnorm ? "RMSNorm" : "LN",
        enum_name(m.activation), m.qk_norm ? ", qk_norm" : "",
        m.zero_init_proj ? ", zero-init projections" : "", m.tie_weights ? ", tied embeddings" : "",
        m.bias ? ", biases" : "");
    fmt::print("parameters   {} ({:.2f}M) in {} tensors\n", params, double(params) / 1e6,
               ck.model.size());
    fmt::print("step         {} of max_iters {}\n", s.iter, c.train.max_iters);
    fmt::print("val loss     best {}, last {}\n", loss(s.best_val_loss),
               loss(s.last_eval.is_object() ? s.last_eval.at("val_loss").get<double>() : NAN));
    fmt::print("data         {} (SHA-256 {}...)\n", fmt::join(c.data.path, ", "),
               ck.data_fingerprint.substr(0, 16));
    fmt::print(
        "optim        {} lr {} -> {} ({}), batch {} x grad_accum {}, weight decay {}{}\n",
        enum_name(c.optim.kind), c.optim.lr, c.optim.min_lr, enum_name(c.schedule.decay),
        c.train.batch_size, c.train.grad_accum, c.optim.weight_decay,
        c.optim.kind == optim::OptimizerKind::muon
            ? fmt::format(", muon_lr {} (momentum {})", c.optim.muon_lr, c.optim.muon_momentum)
            : "");
    fmt::print(
        "scale        {} micro-batches per step ({} process{} x grad_accum {}), {} "
        "sequences\n",
        s.micro_batches, s.processes, s.processes > 1 ? "es" : "", s.micro_batches / s.processes,
        s.micro_batches * c.train.batch_size);
    fmt::print("files\n");
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file())
        fmt::print("  {:<24} {:>12} bytes\n", e.path().filename().string(), e.file_size());
    return 0;
  });
}

}  // namespace qkv::cli
