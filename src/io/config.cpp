// Config parsing: one table of fields drives reading, --set overrides, validation, printing
// and the key reference, so a key cannot be documented but not parsed, or parsed but not saved.
#include "qkv/io/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include <toml++/toml.h>

#include "io/config_fields.h"
#include "qkv/data/utf8.h"
#include "qkv/did_you_mean.h"
#include "qkv/error.h"
#include "qkv/io/regular_file.h"

namespace qkv::io {
namespace {

using detail::Field;
using detail::fields;
using detail::Range;


const Field* find_field(std::string_view key) {
  for (const Field& f : fields())
    if (key == f.key) return &f;
  return nullptr;
}

std::string did_you_mean(std::string_view key) {
  std::vector<std::string> keys;
  for (const Field& f : fields()) keys.push_back(f.key);
  return qkv::did_you_mean(key, keys);
}

std::string describe(const toml::node& n) {
  std::ostringstream os;
  n.visit([&](auto&& v) { os << v; });
  return os.str();
}

std::string range_text(const Range& r) {
  auto num = [](double x) { return std::isinf(x) ? std::string("inf") : fmt::format("{}", x); };
  return fmt::format("{}{}, {}{}", r.lo_open ? "(" : "[", num(r.lo), num(r.hi),
                     r.hi_open ? ")" : "]");
}

bool in_range(const Range& r, double v) {
  return (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi);
}

void check_range(const Field& f, double v) {
  QKV_CHECK(in_range(f.range, v), "{} = {} is out of range {}", f.key, v, range_text(f.range));
}

// Training computes in float32: a value is checked as the float it becomes, so that 1e300 (inf),
// 1e-50 (0) or a beta of 0.9999999999 (1) is refused rather than trained with.
void check_float_range(const Field& f, double v) {
  QKV_CHECK(std::isfinite(v) && std::abs(v) <= double(std::numeric_limits<float>::max()),
            "{} = {} is not a finite float32 number (at most {:g} in magnitude)", f.key, v,
            std::numeric_limits<float>::max());
  check_range(f, v);
  const double as_float = double(float(v));
  QKV_CHECK(in_range(f.range, as_float), "{} = {} is {} in float32, which training computes in; "
            "out of range {}", f.key, v, as_float, range_text(f.range));
}

// Assigns node to the field's member, or throws an Error without location (the caller adds it).
void assign(const Field& f, Config& c, const toml::node& n) {
  auto wrong = [&](const char* expected) {
    return Error(fmt::format("expected {} for '{}', got {}", expected, f.key, describe(n)));
  };
  std::visit(
      [&](auto ref) {
        using T = std::remove_reference_t<decltype(ref(c))>;
        if constexpr (std::is_same_v<T, int64_t>) {
          if (!n.is_integer()) throw wrong("an integer");
          check_range(f, double(n.as_integer()->get()));
          ref(c) = n.as_integer()->get();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!n.is_number()) throw wrong("a number");
          // value<double>() is empty for an integer that a double cannot hold exactly.
          const double v = n.is_integer() ? double(n.as_integer()->get())
                                          : n.as_floating_point()->get();
          check_float_range(f, v);
          ref(c) = v;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!n.is_boolean()) throw wrong("true or false");
          ref(c) = n.as_boolean()->get();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!n.is_string()) throw wrong("a string");
          ref(c) = n.as_string()->get();
        } else if constexpr (std::is_enum_v<T>) {
          if (!n.is_string()) throw wrong("a string");
          const std::string& s = n.as_string()->get();
          const std::optional<T> v = parse_enum<T>(s);
          if (!v)
            throw Error(fmt::format("{} = '{}' is not one of: {}", f.key, s,
                                    fmt::join(enum_names(T{}), ", ")));
          ref(c) = *v;
        } else {
          std::vector<std::string> paths;
          if (n.is_string()) {
            paths.push_back(n.as_string()->get());
          } else if (const toml::array* a = n.as_array()) {
            for (const toml::node& e : *a) {
              if (!e.is_string()) throw wrong("a string or an array of strings");
              paths.push_back(e.as_string()->get());
            }
          } else {
            throw wrong("a string or an array of strings");
          }
          ref(c) = std::move(paths);
        }
      },
      f.ref);
}

// Where each explicitly set key came from, for errors that involve several keys.
using Origins = std::map<std::string, std::string>;

void apply_table(Config& c, const toml::table& root, const std::string& file, Origins& origins) {
  auto where = [&](const toml::node& n) {
    return fmt::format("{}:{}", file, n.source().begin.line);
  };
  for (const auto& [section_key, section] : root) {
    const std::string section_name(section_key.str());
    const toml::table* table = section.as_table();
    if (!table) {
      const std::string key(section_name);
      throw Error(fmt::format("{}: key '{}' is outside any section; put it under [data], "
                              "[model], [optim], [schedule] or [train]{}",
                              where(section), key, did_you_mean("model." + key)));
    }
    for (const auto& [k, node] : *table) {
      const std::string key = section_name + "." + std::string(k.str());
      const Field* f = find_field(key);
      if (!f) throw Error(fmt::format("{}: unknown key '{}'{}", where(node), key, did_you_mean(key)));
      try {
        assign(*f, c, node);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", where(node), e.what()));
      }
      origins[key] = where(node);
    }
  }
}

void apply_override(Config& c, const std::string& arg, Origins& origins) {
  const size_t eq = arg.find('=');
  QKV_CHECK(eq != std::string::npos && eq > 0, "--set {}: expected section.key=value", arg);
  const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
  const Field* f = find_field(key);
  QKV_CHECK(f, "--set {}: unknown key '{}'{}", arg, key, did_you_mean(key));
  // A value that is not valid TOML (a bare word, a path) is taken as a string.
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed.insert("v", value);
  }
  // Numbers and bools are never words; strings, paths and enum names are.
  const bool wants_string = std::visit(
      [&](auto ref) { return !std::is_arithmetic_v<std::remove_reference_t<decltype(ref(c))>>; },
      f->ref);
  if (wants_string && !parsed["v"].is_string() && !parsed["v"].is_array()) {
    parsed.insert_or_assign("v", value);
  }
  try {
    assign(*f, c, *parsed.get("v"));
  } catch (const Error& e) {
    throw Error(fmt::format("--set {}: {}", arg, e.what()));
  }
  origins[key] = "--set " + arg;
}

void validate(const Config& c, const Origins& origins, const std::string& source) {
  auto at = [&](const char* key) {
    auto it = origins.find(key);
    return it != origins.end() ? it->second : source;
  };
  QKV_CHECK(!c.data.path.empty(), "{}: data.path is not set; point it at a text file", source);
  QKV_CHECK(c.model.n_embd % c.model.n_head == 0,
            "{}: model.n_embd = {} is not divisible by model.n_head = {}", at("model.n_head"),
            c.model.n_embd, c.model.n_head);
  QKV_CHECK(c.model.pos_encoding != nn::PosEncoding::sinusoidal || c.model.n_embd % 2 == 0,
            "{}: sinusoidal positions need an even model.n_embd, got {}", at("model.n_embd"),
            c.model.n_embd);
  QKV_CHECK(c.optim.min_lr <= c.optim.lr, "{}: optim.min_lr = {} is above optim.lr = {}",
            at("optim.min_lr"), c.optim.min_lr, c.optim.lr);
  QKV_CHECK(c.schedule.decay != optim::Decay::cosine ||
                c.schedule.lr_decay_iters >= c.schedule.warmup_iters,
            "{}: schedule.lr_decay_iters = {} is before the end of warmup ({})",
            at("schedule.lr_decay_iters"), c.schedule.lr_decay_iters, c.schedule.warmup_iters);
  std::u32string mask;
  try {
    mask = data::decode_utf8(c.data.mask_char, "data.mask_char");
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", at("data.mask_char"), e.what()));
  }
  QKV_CHECK(mask.size() == 1, "{}: data.mask_char must be a single character, got '{}' ({})",
            at("data.mask_char"), c.data.mask_char,
            mask.empty() ? "empty" : fmt::format("{} characters", mask.size()));
}

Config parse_with(const toml::table& root, const std::string& source,
                  const std::vector<std::string>& overrides) {
  Config c;
  Origins origins;
  apply_table(c, root, source, origins);
  for (const std::string& o : overrides) apply_override(c, o, origins);
  validate(c, origins, source);
  return c;
}

toml::table parse_toml(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("{}:{}: {}", source, e.source().begin.line, e.description()));
  }
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return parse_with(parse_toml(text, source), source, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  // Opened here rather than by toml++, whose message for a missing file has no reason and a
  // line number of 0.
  std::string text;
  try {
    text = io::read_regular_file(path);
  } catch (const Error& e) {
    throw Error(fmt::format("config file {}", e.what()));
  }
  return parse_config(std::move(text), path, overrides);
}

std::string to_toml(const Config& config) {
  Config c = config;  // the field table's accessors take a mutable Config
  toml::table root;
  for (const Field& f : fields()) {
    const std::string key = f.key;
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    if (!root.contains(section)) root.insert(section, toml::table{});
    toml::table& t = *root[section].as_table();
    std::visit(
        [&](auto ref) {
          using T = std::remove_reference_t<decltype(ref(c))>;
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            toml::array a;
            for (const auto& s : ref(c)) a.push_back(s);
            t.insert(name, std::move(a));
          } else if constexpr (std::is_enum_v<T>) {
            t.insert(name, std::string(enum_name(ref(c))));
          } else {
            t.insert(name, ref(c));
          }
        },
        f.ref);
  }
  std::ostringstream os;
  os << root << "\n";
  return os.str();
}

std::vector<KeyDoc> config_keys() {
  Config c;
  std::vector<KeyDoc> out;
  for (const Field& f : fields()) {
    KeyDoc d{f.key, "", "", f.meaning};
    std::visit(
        [&](auto ref) {
          using T = std::remove_reference_t<decltype(ref(c))>;
          if constexpr (std::is_same_v<T, int64_t>) {
            d.type = "integer", d.default_value = std::to_string(ref(c));
          } else if constexpr (std::is_same_v<T, double>) {
            d.type = "float", d.default_value = fmt::format("{}", ref(c));
          } else if constexpr (std::is_same_v<T, bool>) {
            d.type = "bool", d.default_value = ref(c) ? "true" : "false";
          } else if constexpr (std::is_same_v<T, std::string>) {
            d.type = "string", d.default_value = "\"" + ref(c) + "\"";
          } else if constexpr (std::is_enum_v<T>) {
            d.type = fmt::format("{}", fmt::join(enum_names(T{}), " | "));
            d.default_value = fmt::format("\"{}\"", enum_name(ref(c)));
          } else {
            d.type = "string or [strings]", d.default_value = "(required)";
          }
        },
        f.ref);
    if (f.range.lo != -INFINITY || f.range.hi != INFINITY) d.meaning += "; range " + range_text(f.range);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace qkv::io
