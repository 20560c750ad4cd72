// A generated corpus for tests: sentences from a small grammar, so a tiny model has structure
// to learn (its loss falls far below the unigram entropy) and no file outside the repo is needed.
#pragma once

#include <string>

#include "qkv/rng.h"

namespace qkv::testing {

inline std::string generated_corpus(int sentences, uint64_t seed = 5) {
  const char* subjects[] = {"the cat", "a dog", "my friend", "the old king", "some birds"};
  const char* verbs[] = {"sees", "likes", "follows", "finds", "eats"};
  const char* objects[] = {"the fish", "a red ball", "the moon", "bread", "the queen"};
  Rng rng(seed);
  std::string text;
  for (int i = 0; i < sentences; ++i) {
    text += subjects[rng.below(5)];
    text += ' ';
    text += verbs[rng.below(5)];
    text += ' ';
    text += objects[rng.below(5)];
    text += rng.below(4) == 0 ? ".\n" : ". ";
  }
  return text;
}

}  // namespace qkv::testing

namespace qkv::testing {

// source<TAB>target lines where the target is the source reversed: a task that needs attention.
inline std::string generated_pairs(int lines, uint64_t seed = 9) {
  Rng rng(seed);
  std::string tsv;
  for (int i = 0; i < lines; ++i) {
    std::string word;
    const int n = 3 + static_cast<int>(rng.below(6));
    for (int j = 0; j < n; ++j) word += static_cast<char>('a' + rng.below(8));
    tsv += word + '\t' + std::string(word.rbegin(), word.rend()) + '\n';
  }
  return tsv;
}

}  // namespace qkv::testing
