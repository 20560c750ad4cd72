#include "loaded_model.h"

#include "http_error.h"
#include "qkv/io/checkpoint.h"
#include "task.h"

namespace qkv::serve {

LoadedModel load_model(const std::string& dir, Precision precision) {
  try {
    const io::CheckpointData ck = io::load_checkpoint(dir, /*with_optimizer=*/false);
    LoadedModel m{.dir = dir, .config = train::checkpoint_config(ck, dir)};
    m.vocab = data::Vocab::from_json(ck.vocab, dir + "/vocab.json");
    m.model_config = train::model_config(m.config, m.vocab.size());
    m.model = train::make_model(m.model_config);
    train::load_weights(*m.model, ck, dir, dir + "/config.toml");
    m.model->set_precision(precision);
    return m;
  } catch (const Error& e) {
    throw HttpError(500, e.what());
  }
}

}  // namespace qkv::serve
