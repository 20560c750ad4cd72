// Train/validation splits: the first part of the data trains, the rest validates (nanoGPT).
#pragma once

#include <cstdint>
#include <string_view>

namespace qkv::data {

enum class Split { train, val };

const char* split_name(Split split);  // "train", "val"

// How many of n leading items form the train split: floor(n * (1 - val_fraction)), nanoGPT's
// int(n * 0.9) for val_fraction = 0.1. Throws qkv::Error unless 0 <= val_fraction < 1.
int64_t train_size(int64_t n, double val_fraction);

// Throws qkv::Error when a split of n characters is shorter than a window needs, e.g.
// "val split has 50 characters, needs at least block_size+1 = 65; raise data.val_fraction or
// lower block_size". need_what says where the need comes from ("block_size+1").
void check_split_length(Split split, int64_t n, int64_t need, std::string_view need_what);

}  // namespace qkv::data
