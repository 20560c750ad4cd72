#include "metrics.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "qkv/error.h"

namespace qkv::train {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_iter, bool evaluated_at_resume)
    : path_(path) {
  if (resume_iter >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::vector<std::string> kept;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.contains("iter")) continue;  // a line cut short by a crash
      const int64_t it = j["iter"].get<int64_t>();
      const bool eval_kept = it < resume_iter || (it == resume_iter && evaluated_at_resume);
      if (j.contains("val_loss") ? eval_kept : it < resume_iter) kept.push_back(line);
    }
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      for (const auto& l : kept) out << l << '\n';
      QKV_CHECK(out.good(), "{}: cannot write", tmp);
    }
    std::filesystem::rename(tmp, path);
  }
  out_.open(path, std::ios::app);
  QKV_CHECK(out_.good(), "{}: cannot open for writing", path);
}

void MetricsLog::append(const nlohmann::json& line) {
  out_ << line.dump() << '\n';
  out_.flush();
}

}  // namespace qkv::train
