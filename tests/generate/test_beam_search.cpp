// Beam search: on hand-made distributions where greedy decoding is wrong or where short outputs
// finish first, and against an exhaustive search over every output of random distributions.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "beam_oracle.h"
#include "qkv/error.h"
#include "qkv/generate.h"

using namespace qkv;
using namespace qkv::generate;
using namespace qkv::testing::beam;

TEST_CASE("beam search: beam 2 finds the better sequence that greedy decoding misses") {
  // Greedy takes 'a' (0.6) and then ends (0.4): score (ln 0.6 + ln 0.4) / 2 = -0.71. Starting with
  // the less likely 'b' (0.4) ends almost surely (0.95): (ln 0.4 + ln 0.95) / 2 = -0.48.
  const Distribution trap =
      table({{"", {0.6, 0.4, 1e-6}}, {"a", {0.3, 0.3, 0.4}}, {"b", {0.025, 0.025, 0.95}}});
  const std::vector<Hypothesis> greedy = search(trap, 3, 10, {.beam = 1});
  REQUIRE(greedy.size() == 1);
  CHECK(text(greedy[0].tokens) == "a");
  CHECK(greedy[0].log_prob == doctest::Approx(std::log(0.6) + std::log(0.4)).epsilon(1e-6));

  const std::vector<Hypothesis> beam = search(trap, 3, 10, {.beam = 2, .n_best = 2});
  REQUIRE(beam.size() == 2);
  CHECK(text(beam[0].tokens) == "b");
  CHECK(beam[0].log_prob == doctest::Approx(std::log(0.4) + std::log(0.95)).epsilon(1e-6));
  CHECK(beam[0].score == doctest::Approx(beam[0].log_prob / 2));
  // "aa" (0.6 · 0.3 · 0.8: -0.65 per token) outscores "a", which finished first.
  CHECK(text(beam[1].tokens) == "aa");
  CHECK(beam[0].score > greedy[0].score);
}

TEST_CASE("beam search: beam 1 is the argmax loop") {
  // The most likely token is a, then b, then a, then <eos>.
  Scorer scorer(table({{"", {0.7, 0.2, 0.1}},
                       {"a", {0.2, 0.7, 0.1}},
                       {"ab", {0.6, 0.3, 0.1}},
                       {"aba", {0.1, 0.2, 0.7}}}));
  const std::vector<Hypothesis> h = beam_search({.beam = 1}, 10, kEos, std::ref(scorer));
  REQUIRE(h.size() == 1);
  CHECK(text(h[0].tokens) == "aba");
  CHECK(h[0].log_prob ==
        doctest::Approx(std::log(0.7) + std::log(0.7) + std::log(0.6) + std::log(0.7)));
  CHECK(scorer.calls == 4);
}

TEST_CASE("beam search: a hypothesis at max_length must end, and pays for its <eos>") {
  const Distribution likes_a = table({}, {0.9, 0.09, 0.01});
  const std::vector<Hypothesis> h = search(likes_a, 3, 2, {.beam = 1});
  REQUIRE(h.size() == 1);
  CHECK(text(h[0].tokens) == "aa");
  CHECK(h[0].log_prob == doctest::Approx(2 * std::log(0.9) + std::log(0.01)).epsilon(1e-6));
  CHECK(h[0].score == doctest::Approx(h[0].log_prob / 3));
}

TEST_CASE("beam search: it runs on while a live hypothesis can still beat the finished ones") {
  // The answer is nine a's, each 0.9 likely, then <eos> (0.99); every prefix holding a b ends
  // at once (0.9). Four short outputs finish within three steps, all far below the answer's
  // score per token: stopping when `beam` have finished would return them.
  const Distribution nine_as = [](const std::string& p) {
    if (p.find('b') != std::string::npos) return logs({0.05, 0.05, 0.9});
    return logs(p.size() < 9 ? std::vector<double>{0.9, 0.07, 0.03}
                             : std::vector{0.005, 0.005, 0.99});
  };
  for (double alpha : {0.0, 1.0}) {
    CAPTURE(alpha);
    const std::vector<Hypothesis> h =
        search(nine_as, 3, 15, {.beam = 4, .n_best = 4, .length_penalty = alpha});
    REQUIRE(h.size() == 4);
    const std::vector<Hypothesis> all = exhaustive(nine_as, 3, 15, alpha);
    for (size_t i = 0; i < 4; ++i) CHECK(text(h[i].tokens) == text(all[i].tokens));
    if (alpha == 1.0) CHECK(text(h[0].tokens) == "aaaaaaaaa");
  }
}

TEST_CASE("beam search: a wide enough beam finds the n best of an exhaustive search") {
  // With a beam of C^max_length (C = V - 1 tokens besides <eos>) nothing is ever pruned, so
  // only the stopping rule stands between the search and the exhaustive answer.
  struct Case {
    int V;
    int64_t max_length;
  };
  for (const Case c : {Case{3, 6}, Case{4, 6}, Case{6, 4}, Case{6, 1}})
    for (double alpha : {0.0, 0.6, 1.0, 2.0})
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        CAPTURE(c.V);
        CAPTURE(c.max_length);
        CAPTURE(alpha);
        CAPTURE(seed);
        const Distribution next = random_tree(seed, c.V);
        const auto width = int64_t(std::pow(c.V - 1, c.max_length));
        const std::vector<Hypothesis> all = exhaustive(next, c.V, c.max_length, alpha);
        const std::vector<Hypothesis> found =
            search(next, c.V, c.max_length, {.beam = width, .n_best = 3, .length_penalty = alpha});
        REQUIRE(found.size() == 3);
        for (size_t i = 0; i < 3; ++i) {
          CHECK(text(found[i].tokens) == text(all[i].tokens));
          CHECK(found[i].score == all[i].score);
        }
      }
}

TEST_CASE("beam search: any beam scores at least as high as greedy decoding; beam 1 is greedy") {
  for (int V : {3, 4, 6})
    for (double alpha : {0.0, 0.6, 1.0, 2.0})
      for (uint64_t seed = 1; seed <= 12; ++seed) {
        CAPTURE(V);
        CAPTURE(alpha);
        CAPTURE(seed);
        const Distribution next = random_tree(seed, V);
        const Hypothesis greedy = greedy_walk(next, V, 8, alpha);
        const std::vector<Hypothesis> one = search(next, V, 8, {.length_penalty = alpha});
        CHECK(one.front().tokens == greedy.tokens);
        CHECK(one.front().score == greedy.score);
        for (int64_t beam : {2, 3, 5})
          CHECK(search(next, V, 8, {.beam = beam, .length_penalty = alpha}).front().score >=
                greedy.score);
      }
}

TEST_CASE("beam search: bad options and a scorer of the wrong size are errors") {
  const Distribution any = table({});
  auto fails = [&](BeamOptions o, int32_t eos, const char* message) {
    Scorer scorer(any);
    CHECK_THROWS_WITH_AS(beam_search(o, 5, eos, std::ref(scorer)), doctest::Contains(message),
                         Error);
  };
  fails({.beam = 0}, kEos, "beam search: beam = 0 must be at least 1");
  fails({.beam = 2, .n_best = 3}, kEos, "n_best = 3 must be between 1 and beam = 2");
  fails({.beam = 2, .n_best = 0}, kEos, "n_best = 0 must be between 1 and beam = 2");
  fails({.length_penalty = -1}, kEos, "length_penalty = -1 must be a number >= 0");
  fails({.length_penalty = INFINITY}, kEos, "length_penalty = inf must be a number >= 0");
  fails({.beam = 2}, 7, "3 log-probabilities for 1 hypotheses and eos id 7");
}
