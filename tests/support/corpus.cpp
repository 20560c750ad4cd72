#include "support/corpus.h"

#include <algorithm>

#include "qkv/rng.h"

namespace qkv::testing {

std::string generated_corpus(int sentences, uint64_t seed) {
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

std::string generated_pairs(int lines, uint64_t seed) {
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

std::string distinct_letters_pairs(int lines, uint64_t seed) {
  Rng rng(seed);
  std::string tsv;
  for (int i = 0; i < lines; ++i) {
    std::string letters = "abcdefghijklmno";
    for (size_t j = letters.size() - 1; j > 0; --j)
      std::swap(letters[j], letters[rng.below(j + 1)]);
    std::string target = letters.substr(0, 1 + rng.below(15));
    std::string source = target;
    for (uint64_t extra = rng.below(6); extra > 0; --extra)
      source += target[rng.below(target.size())];
    for (size_t j = source.size() - 1; j > 0; --j) std::swap(source[j], source[rng.below(j + 1)]);
    std::sort(target.begin(), target.end());
    tsv += source + '\t' + target + '\n';
  }
  return tsv;
}

}  // namespace qkv::testing
