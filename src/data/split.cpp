// Train/validation split arithmetic shared by the text and pair datasets.
#include "qkv/data/split.h"

#include <cmath>

#include "qkv/error.h"

namespace qkv::data {

const char* split_name(Split split) { return split == Split::train ? "train" : "val"; }

int64_t train_size(int64_t n, double val_fraction) {
  QKV_CHECK(val_fraction >= 0.0 && val_fraction < 1.0, "data.val_fraction = {} is outside [0, 1)",
            val_fraction);
  return int64_t(std::floor(double(n) * (1.0 - val_fraction)));
}

void check_split_length(Split split, int64_t n, int64_t need, std::string_view need_what) {
  QKV_CHECK(n >= need, "{} split has {} characters, needs at least {} = {}; {}", split_name(split),
            n, need_what, need,
            split == Split::val ? "raise data.val_fraction or lower block_size"
                                : "use a longer corpus, or lower data.val_fraction or block_size");
}

}  // namespace qkv::data
