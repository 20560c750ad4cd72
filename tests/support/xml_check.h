// A small XML well-formedness check for the SVG files qkv writes (no XML library is a
// dependency): one root element, tags that nest and match, quoted and unique attributes, '&'
// only in entities, no '<' in text or values. It also counts elements, by name and by
// "name.class" when they have a class attribute.
#pragma once

#include <cctype>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::testing {

struct XmlCheck {
  std::string error;                 // empty when well-formed
  std::map<std::string, int> count;  // "polyline": 4, "polyline.val": 2, "g.panel": 8
  bool ok() const { return error.empty(); }
  int operator[](const std::string& key) const {
    const auto it = count.find(key);
    return it == count.end() ? 0 : it->second;
  }
};

XmlCheck check_xml(std::string_view doc);

}  // namespace qkv::testing
