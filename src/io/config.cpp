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
#include "qkv/error_context.h"
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

Error wrong(const Field& f, const toml::node& n, const char* expected) {
  return Error(fmt::format("expected {} for '{}', got {}", expected, f.key, describe(n)));
}

// Each type a key can hold, in one place: its name in the key reference, how a TOML node becomes
// one (checked; the Error has no location, the caller adds it), how one becomes a TOML node for
// to_toml, and how a default shows in the reference.
template <class T>
struct Value;

template <>
struct Value<int64_t> {
  static std::string type() { return "integer"; }
  static int64_t read(const Field& f, const toml::node& n) {
    if (!n.is_integer()) throw wrong(f, n, "an integer");
    check_range(f, double(n.as_integer()->get()));
    return n.as_integer()->get();
  }
  static int64_t node(int64_t v) { return v; }
  static std::string text(int64_t v) { return std::to_string(v); }
};

template <>
struct Value<double> {
  static std::string type() { return "float"; }
  static double read(const Field& f, const toml::node& n) {
    if (!n.is_number()) throw wrong(f, n, "a number");
    // value<double>() is empty for an integer that a double cannot hold exactly.
    const double v =
        n.is_integer() ? double(n.as_integer()->get()) : n.as_floating_point()->get();
    check_float_range(f, v);
    return v;
  }
  static double node(double v) { return v; }
  static std::string text(double v) { return fmt::format("{}", v); }
};

template <>
struct Value<bool> {
  static std::string type() { return "bool"; }
  static bool read(const Field& f, const toml::node& n) {
    if (!n.is_boolean()) throw wrong(f, n, "true or false");
    return n.as_boolean()->get();
  }
  static bool node(bool v) { return v; }
  static std::string text(bool v) { return v ? "true" : "false"; }
};

template <>
struct Value<std::string> {
  static std::string type() { return "string"; }
  static std::string read(const Field& f, const toml::node& n) {
    if (!n.is_string()) throw wrong(f, n, "a string");
    return n.as_string()->get();
  }
  static const std::string& node(const std::string& v) { return v; }
  static std::string text(const std::string& v) { return "\"" + v + "\""; }
};

template <class E>
  requires std::is_enum_v<E>
struct Value<E> {
  static std::string type() { return fmt::format("{}", fmt::join(enum_names(E{}), " | ")); }
  static E read(const Field& f, const toml::node& n) {
    if (!n.is_string()) throw wrong(f, n, "a string");
    const std::string& s = n.as_string()->get();
    const std::optional<E> v = parse_enum<E>(s);
    if (!v) {
      const auto table = enum_names(E{});
      const std::vector<std::string> names(table.begin(), table.end());
      throw Error(fmt::format("{} = '{}' is not one of: {}{}", f.key, s, fmt::join(names, ", "),
                              qkv::did_you_mean(s, names)));
    }
    return *v;
  }
  static std::string node(E v) { return std::string(enum_name(v)); }
  static std::string text(E v) { return fmt::format("\"{}\"", enum_name(v)); }
};

// Paths: one string or an array of them.
template <>
struct Value<std::vector<std::string>> {
  static std::string type() { return "string or [strings]"; }
  static std::vector<std::string> read(const Field& f, const toml::node& n) {
    if (n.is_string()) return {n.as_string()->get()};
    const toml::array* a = n.as_array();
    if (!a) throw wrong(f, n, "a string or an array of strings");
    std::vector<std::string> paths;
    for (const toml::node& e : *a) {
      if (!e.is_string()) throw wrong(f, n, "a string or an array of strings");
      paths.push_back(e.as_string()->get());
    }
    return paths;
  }
  static toml::array node(const std::vector<std::string>& v) {
    toml::array a;
    for (const std::string& s : v) a.push_back(s);
    return a;
  }
  static std::string text(const std::vector<std::string>&) { return "(required)"; }
};

// Calls use(member, Value<T>{}) with the member of c that f names: the one walk over the types
// that reading, overriding, printing and documenting share.
template <class Use>
auto with_value(const Field& f, Config& c, Use&& use) {
  return std::visit(
      [&](auto ref) { return use(ref(c), Value<std::remove_reference_t<decltype(ref(c))>>{}); },
      f.ref);
}

// Assigns node to the field's member, or throws an Error without location (the caller adds it).
void assign(const Field& f, Config& c, const toml::node& n) {
  with_value(f, c, [&](auto& member, auto value) { member = value.read(f, n); });
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
    QKV_CHECK(table,
              "{}: key '{}' is outside any section; put it under [data], [model], [optim], "
              "[schedule] or [train]{}",
              where(section), section_name, did_you_mean("model." + section_name));
    for (const auto& [k, node] : *table) {
      const std::string key = section_name + "." + std::string(k.str());
      const Field* f = find_field(key);
      if (!f) throw Error(fmt::format("{}: unknown key '{}'{}", where(node), key, did_you_mean(key)));
      in_context(where(node) + ": ", [&] { assign(*f, c, node); });
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
  const bool wants_string = with_value(*f, c, [](auto& member, auto) {
    return !std::is_arithmetic_v<std::decay_t<decltype(member)>>;
  });
  if (wants_string && !parsed["v"].is_string() && !parsed["v"].is_array()) {
    parsed.insert_or_assign("v", value);
  }
  in_context("--set " + arg + ": ", [&] { assign(*f, c, *parsed.get("v")); });
  origins[key] = "--set " + arg;
}

void validate(const Config& c, const Origins& origins, const std::string& source) {
  auto at = [&](const char* key) {
    auto it = origins.find(key);
    return it != origins.end() ? it->second : source;
  };
  QKV_CHECK(!c.data.path.empty(), "{}: data.path {}; point it at a text file", at("data.path"),
            origins.contains("data.path") ? "is an empty list" : "is not set");
  c.model.check_keys(at);
  QKV_CHECK(c.optim.min_lr <= c.optim.lr, "{}: optim.min_lr = {} is above optim.lr = {}",
            at("optim.min_lr"), c.optim.min_lr, c.optim.lr);
  // Decoupled decay scales each weight by 1 - lr·weight_decay per step: at 1 or more it zeroes or
  // flips every weight, which training cannot recover from. The blame goes to a --set of either.
  const bool lr_to_blame =
      at("optim.lr").starts_with("--set") && !at("optim.weight_decay").starts_with("--set");
  QKV_CHECK(c.optim.lr * c.optim.weight_decay < 1,
            "{}: optim.weight_decay = {} with optim.lr = {} would scale every weight by {:.3g} "
            "each step; it must keep lr·weight_decay below 1",
            at(lr_to_blame ? "optim.lr" : "optim.weight_decay"), c.optim.weight_decay, c.optim.lr,
            1 - c.optim.lr * c.optim.weight_decay);
  QKV_CHECK(c.schedule.decay == optim::Decay::constant ||
                c.schedule.lr_decay_iters >= c.schedule.warmup_iters,
            "{}: schedule.lr_decay_iters = {} is before the end of warmup ({})",
            at("schedule.lr_decay_iters"), c.schedule.lr_decay_iters, c.schedule.warmup_iters);
  const std::u32string mask = in_context(at("data.mask_char") + ": ", [&] {
    return data::decode_utf8(c.data.mask_char, "data.mask_char");
  });
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
  return parse_config(in_context("config file ", [&] { return io::read_regular_file(path); }),
                      path, overrides);
}

std::string to_toml(const Config& config) {
  Config c = config;  // the field table's accessors take a mutable Config
  toml::table root;
  for (const Field& f : fields()) {
    const std::string key = f.key;
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    if (!root.contains(section)) root.insert(section, toml::table{});
    toml::table& t = *root[section].as_table();
    with_value(f, c, [&](auto& member, auto value) { t.insert(name, value.node(member)); });
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
    with_value(f, c, [&](auto& member, auto value) {
      d.type = value.type();
      d.default_value = value.text(member);
    });
    if (f.range.lo != -INFINITY || f.range.hi != INFINITY) d.meaning += "; range " + range_text(f.range);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace qkv::io
