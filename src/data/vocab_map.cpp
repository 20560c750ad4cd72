// vocab_ids: renumbering a corpus's ids, and finding the first character a vocabulary lacks.
#include "data/vocab_map.h"

namespace qkv::data {

std::vector<int32_t> vocab_ids(const Corpus& corpus, const Vocab& vocab,
                               const std::function<void(int64_t, char32_t)>& unknown) {
  const std::vector<char32_t>& chars = corpus.chars();
  std::vector<int32_t> to_vocab(chars.size());
  std::vector<bool> missing(chars.size());
  bool same = true, any_missing = false;
  for (size_t i = 0; i < chars.size(); ++i) {
    to_vocab[i] = vocab.id_of(chars[i]);
    missing[i] = to_vocab[i] < 0;
    any_missing = any_missing || missing[i];
    same = same && to_vocab[i] == int32_t(i);
  }
  if (any_missing) {
    const int64_t at = corpus.find_first(missing);
    int32_t id = 0;
    corpus.read(at, 1, &id);
    unknown(at, chars[size_t(id)]);
  }
  if (same) to_vocab.clear();
  return to_vocab;
}

}  // namespace qkv::data
