// Enum values as a config file spells them (model.kind = "encoder"): each such enum declares one
// table, enum_names(E), in its namespace; parsing, to_toml, the config reference and messages
// all read it, so they cannot disagree.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace qkv {

template <size_t N>
using EnumNames = std::array<std::string_view, N>;  // in value order

// e's name: enum_name(Norm::post) == "post".
template <class E>
constexpr std::string_view enum_name(E e) {
  return enum_names(E{})[static_cast<size_t>(e)];
}

// The value called `name`, or nullopt.
template <class E>
constexpr std::optional<E> parse_enum(std::string_view name) {
  const auto names = enum_names(E{});
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<E>(i);
  return std::nullopt;
}

}  // namespace qkv
