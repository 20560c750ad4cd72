// A generated corpus for tests: sentences from a small grammar, so a tiny model has structure
// to learn (its loss falls far below the unigram entropy) and no file outside the repo is needed.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/rng.h"

namespace qkv::testing {

std::string generated_corpus(int sentences, uint64_t seed = 5);

// source<TAB>target lines where the target is the source reversed: a task that needs attention.
std::string generated_pairs(int lines, uint64_t seed = 9);

// source<TAB>target lines where the target is the distinct letters of the source in
// alphabetical order ("nbanna" -> "abn"): a target of 1 to 15 letters (of a..o, each length
// equally likely), a source of the target's letters shuffled with up to 5 repeats. The end of
// the target depends on which letters occur, not on the source's length, so ending too soon
// or too late is the typical mistake.
std::string distinct_letters_pairs(int lines, uint64_t seed = 3);

}  // namespace qkv::testing
