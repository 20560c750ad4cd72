// Module registry: names, order, modes and state-dict loading, on small modules built here.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "qkv/error.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/module.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

struct Leaf : Module {
  Tensor a = param("a", {2, 3}, Init::ones());
  Tensor b = param("b", {3}, Init::zeros());
};

struct Tree : Module {
  Tensor first = param("first", {1}, Init::zeros());
  Leaf& left = submodule<Leaf>("left");
  Leaf& right = submodule<Leaf>("blocks.0");
};

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("module: parameters are depth-first in registration order, own before children") {
  Tree t;
  CHECK(names_of(t) ==
        std::vector<std::string>{"first", "left.a", "left.b", "blocks.0.a", "blocks.0.b"});
  CHECK(t.num_parameters() == 1 + 2 * (6 + 3));
  CHECK(t.parameters().size() == 5);
  CHECK(t.parameters()[1].impl() == t.left.a.impl());
}

TEST_CASE("module: parameters are named leaves that require grad") {
  Tree t;
  CHECK(t.left.a.name() == "a");  // local name until the root names them
  t.name_parameters();
  for (const auto& [name, p] : t.named_parameters()) {
    CHECK(p.name() == name);
    CHECK(p.requires_grad());
    CHECK(p.grad_fn() == nullptr);
  }
  CHECK(t.right.a.name() == "blocks.0.a");
}

TEST_CASE("module: state_dict shares data but not autograd state") {
  Tree t;
  NamedTensors sd = t.state_dict();
  REQUIRE(sd.size() == 5);
  CHECK(sd[1].first == "left.a");
  CHECK(sd[1].second.data() == t.left.a.data());
  CHECK(!sd[1].second.requires_grad());
}

TEST_CASE("module: load_state_dict copies values by name, in any order") {
  Tree src, dst;
  src.left.a.data()[4] = 7.0f;
  src.right.b.data()[2] = -3.0f;
  NamedTensors sd = src.state_dict();
  std::reverse(sd.begin(), sd.end());
  dst.load_state_dict(sd);
  CHECK(dst.left.a.at({1, 1}) == 7.0f);
  CHECK(dst.right.b.at({2}) == -3.0f);
  CHECK(dst.left.a.data() != src.left.a.data());
}

TEST_CASE("module: load_state_dict reports every problem in one error and copies nothing") {
  Tree t;
  NamedTensors sd = t.state_dict();
  for (auto& [name, v] : sd) v = Tensor::full(v.shape(), 5.0f);
  sd.erase(sd.begin() + 2);                          // left.b missing
  sd[0].second = Tensor::zeros({4});                 // first: wrong shape
  sd.emplace_back("foo", Tensor::zeros({1}));        // unexpected
  sd.emplace_back("left.a", Tensor::zeros({2, 3}));  // given twice
  try {
    t.load_state_dict(sd);
    FAIL("load_state_dict accepted a bad dict");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.starts_with("load_state_dict: "));
    CHECK(msg.find("missing 'left.b'") != std::string::npos);
    CHECK(msg.find("'first' is [4], model expects [1]") != std::string::npos);
    CHECK(msg.find("unexpected 'foo'") != std::string::npos);
    CHECK(msg.find("duplicate 'left.a'") != std::string::npos);
  }
  CHECK(t.left.a.at({0, 0}) == 1.0f);
  CHECK(t.right.a.at({0, 0}) == 1.0f);
  // The same problems, one per entry, for callers that word the error themselves.
  CHECK(t.state_dict_problems(sd) ==
        std::vector<std::string>{"duplicate 'left.a'", "'first' is [4], model expects [1]",
                                 "missing 'left.b'", "unexpected 'foo'"});
  CHECK(t.state_dict_problems(t.state_dict()).empty());
}

TEST_CASE("linear: weight is [out, in] and bias only when asked") {
  Rng rng(3);
  Linear with(4, 6, true, rng), without(4, 6, false, rng);
  CHECK(with.weight().shape() == Shape{6, 4});
  CHECK(with.bias().shape() == Shape{6});
  CHECK(!without.bias().defined());
  CHECK(without.named_parameters().size() == 1);
}
