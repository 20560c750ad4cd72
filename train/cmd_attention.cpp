// `qkv attention`: heatmaps of a checkpoint's attention weights on one text, as SVG.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/io/durable_file.h"
#include "qkv/load.h"
#include "qkv/runtime.h"

namespace qkv::cli {

void add_attention(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<inspect::AttentionRequest>();
  auto checkpoint = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>("attn.svg");
  auto threads = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand(
      "attention",
      "Draw a checkpoint's attention weights on a text as SVG heatmaps, one panel "
      "per layer and head");
  cmd->add_option("checkpoint", *checkpoint, "Run directory or checkpoint directory")->required();
  cmd->add_option("--prompt,--input", a->text,
                  "The text (decoder, encoder) or the source (encoder-decoder)")
      ->required();
  cmd->add_option("--target", a->target,
                  "Encoder-decoder: the output fed to the decoder (e.g. the expected answer)");
  cmd->add_option("--part", a->part,
                  "Encoder-decoder: which attention to draw: cross, encoder or decoder")
      ->capture_default_str();
  cmd->add_option("--layer", a->layer, "Only this layer (from 0; default: all)")
      ->check(at_least(0));
  cmd->add_option("--head", a->head, "Only this head (from 0; default: all)")->check(at_least(0));
  cmd->add_option("-o,--out", *out, "SVG file to write")->capture_default_str();
  cmd->add_option("--threads", *threads, "Threads (0 = all cores)")->check(at_least(0));
  on_run(*cmd, run, [a, checkpoint, out, threads]() -> int {
    set_num_threads(*threads);
    const load::LoadedModel m = load::load_model(*checkpoint);
    plot::AttentionChart chart = inspect::probe_attention(*m.model, m.config, m.vocab, *a);
    chart.title += fmt::format(" of {} ({} model)", m.dir, enum_name(m.config.model.kind));
    io::replace_file(*out, plot::attention_chart_svg(chart));
    std::printf("wrote %s (%zu panel%s)\n", out->c_str(), chart.panels.size(),
                chart.panels.size() == 1 ? "" : "s");
    return 0;
  });
}

}  // namespace qkv::cli
