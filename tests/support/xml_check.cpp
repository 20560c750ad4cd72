#include "support/xml_check.h"

#include <cctype>
#include <set>
#include <vector>

namespace qkv::testing {

XmlCheck check_xml(std::string_view doc) {
  XmlCheck r;
  size_t i = 0;
  std::vector<std::string> open;
  int roots = 0;
  auto fail = [&](const std::string& what) {
    if (r.error.empty()) r.error = what + " at byte " + std::to_string(i);
  };
  auto name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' ||
           c == '.';
  };
  // Text or an attribute value: entities only, never '<'.
  auto check_chars = [&](std::string_view s) {
    for (size_t p = 0; p < s.size(); ++p) {
      if (s[p] == '<') return fail("'<' in text"), false;
      if (s[p] != '&') continue;
      const size_t end = s.find(';', p);
      const std::string_view ent =
          end == std::string_view::npos ? "" : s.substr(p + 1, end - p - 1);
      static const std::set<std::string_view> named{"amp", "lt", "gt", "quot", "apos"};
      if (!named.count(ent) && !(ent.size() > 1 && ent[0] == '#')) return fail("bad entity"), false;
    }
    return true;
  };
  auto skip_to = [&](std::string_view end) {
    const size_t p = doc.find(end, i);
    if (p == std::string_view::npos) return fail("unterminated " + std::string(end)), false;
    i = p + end.size();
    return true;
  };
  while (r.ok() && i < doc.size()) {
    const size_t lt = doc.find('<', i);
    const std::string_view text = doc.substr(i, lt == std::string_view::npos ? doc.npos : lt - i);
    if (!check_chars(text)) break;
    if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string_view::npos)
      fail("text outside the root element");
    if (lt == std::string_view::npos) break;
    i = lt;
    if (doc.substr(i, 4) == "<!--") {
      skip_to("-->");
    } else if (doc.substr(i, 2) == "<?") {
      skip_to("?>");
    } else if (doc.substr(i, 2) == "</") {
      i += 2;
      const size_t start = i;
      while (i < doc.size() && name_char(doc[i])) ++i;
      const std::string name(doc.substr(start, i - start));
      if (i >= doc.size() || doc[i] != '>')
        fail("bad end tag");
      else if (open.empty() || open.back() != name)
        fail("</" + name + "> does not match");
      else
        open.pop_back(), ++i;
    } else {
      ++i;
      const size_t start = i;
      while (i < doc.size() && name_char(doc[i])) ++i;
      const std::string name(doc.substr(start, i - start));
      if (name.empty()) {
        fail("empty tag name");
        break;
      }
      if (open.empty() && roots++ > 0) {
        fail("a second root element");
        break;
      }
      std::set<std::string> attrs;
      std::string cls;
      bool closed = false;
      while (r.ok()) {
        while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
        if (i >= doc.size()) {
          fail("unterminated tag <" + name);
          break;
        }
        if (doc.substr(i, 2) == "/>") {
          i += 2, closed = true;
          break;
        }
        if (doc[i] == '>') {
          ++i;
          break;
        }
        const size_t a = i;
        while (i < doc.size() && name_char(doc[i])) ++i;
        const std::string attr(doc.substr(a, i - a));
        if (attr.empty() || i + 1 >= doc.size() || doc[i] != '=' ||
            (doc[i + 1] != '"' && doc[i + 1] != '\'')) {
          fail("bad attribute in <" + name);
          break;
        }
        if (!attrs.insert(attr).second) fail("duplicate attribute " + attr);
        const char quote = doc[i + 1];
        const size_t end = doc.find(quote, i + 2);
        if (end == std::string_view::npos) {
          fail("unterminated attribute value");
          break;
        }
        const std::string_view value = doc.substr(i + 2, end - i - 2);
        check_chars(value);
        if (attr == "class") cls = value;
        i = end + 1;
      }
      ++r.count[name];
      if (!cls.empty()) ++r.count[name + "." + cls];
      if (r.ok() && !closed) open.push_back(name);
    }
  }
  if (r.ok() && !open.empty()) fail("<" + open.back() + "> is never closed");
  if (r.ok() && roots != 1) fail("no root element");
  return r;
}

}  // namespace qkv::testing
