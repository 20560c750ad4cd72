// "did you mean": the nearest of the words a program knows to one it was given, for messages
// about a mistyped config key or command.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qkv {

// " (did you mean 'train'?)" for the candidate at most two edits (Levenshtein) from `word`,
// the nearest one; "" when none is that near.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace qkv
