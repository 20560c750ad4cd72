// Reading server-sent events in the tests: a stream's events as (name, JSON data) pairs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qkv::testing {

struct Event {
  std::string name;
  nlohmann::json data;
};

// Splits buffered stream text into whole events, leaving an unfinished one in `text`;
// comments (": keep-alive") are dropped.
inline std::vector<Event> take_events(std::string& text) {
  std::vector<Event> events;
  for (size_t end; (end = text.find("\n\n")) != std::string::npos;) {
    const std::string block = text.substr(0, end);
    text.erase(0, end + 2);
    Event e;
    size_t pos = 0;
    while (pos < block.size()) {
      size_t nl = block.find('\n', pos);
      if (nl == std::string::npos) nl = block.size();
      const std::string line = block.substr(pos, nl - pos);
      if (line.starts_with("event: ")) e.name = line.substr(7);
      if (line.starts_with("data: ")) e.data = nlohmann::json::parse(line.substr(6));
      pos = nl + 1;
    }
    if (!e.name.empty()) events.push_back(std::move(e));
  }
  return events;
}

}  // namespace qkv::testing
