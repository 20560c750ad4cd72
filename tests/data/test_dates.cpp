// The date-normalisation generator: calendar facts, formats, determinism and a clean split.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "qkv/data/dates.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/data/split.h"
#include "qkv/error.h"
#include "qkv/io/config.h"

using namespace qkv;
using namespace qkv::data;

namespace {

// Parses "YYYY-MM-DD" strictly; false for anything else.
bool parse_iso(const std::string& s, Date& d) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return false;
  d = {std::stoi(s.substr(0, 4)), std::stoi(s.substr(5, 2)), std::stoi(s.substr(8, 2))};
  return true;
}

}  // namespace

TEST_CASE("dates: weekdays of known dates, and each day is the next weekday of the one before") {
  CHECK(weekday({1999, 3, 3}) == 2);    // a Wednesday
  CHECK(weekday({1900, 1, 1}) == 0);    // a Monday
  CHECK(weekday({2000, 2, 29}) == 1);   // a Tuesday
  CHECK(weekday({2099, 12, 31}) == 3);  // a Thursday
  CHECK(weekday({1969, 7, 20}) == 6);   // a Sunday
  Date d{kFirstYear, 1, 1};
  int w = weekday(d), days = 0;
  while (d.year <= kLastYear) {
    REQUIRE(is_valid_date(d));
    CHECK(weekday(d) == w);
    w = (w + 1) % 7;
    ++days;
    if (++d.day > days_in_month(d.year, d.month))
      d = {d.year + (d.month == 12), d.month % 12 + 1, 1};
  }
  CHECK(days == 73049);  // 200 years, 49 of them leap (2000 is, 1900 is not)
}

TEST_CASE("dates: leap years and month lengths") {
  CHECK(is_leap_year(2000));
  CHECK_FALSE(is_leap_year(1900));
  CHECK(is_leap_year(1996));
  CHECK_FALSE(is_leap_year(1999));
  CHECK(days_in_month(2000, 2) == 29);
  CHECK(days_in_month(1900, 2) == 28);
  CHECK(days_in_month(2001, 4) == 30);
  CHECK_FALSE(is_valid_date({1999, 2, 29}));
  CHECK_FALSE(is_valid_date({1999, 13, 1}));
  CHECK_FALSE(is_valid_date({1999, 4, 31}));
}

TEST_CASE("dates: every format of 1999-03-03, and casing") {
  const Date d{1999, 3, 3};
  const char* want[kDateFormats] = {"March 3 1999",
                                    "March 3, 1999",
                                    "March 3rd, 1999",
                                    "3 March 1999",
                                    "3rd March 1999",
                                    "3rd of March, 1999",
                                    "the 3rd of March 1999",
                                    "Mar 3, 1999",
                                    "3 Mar 1999",
                                    "03-Mar-1999",
                                    "1999 March 3",
                                    "1999/03/03",
                                    "03.03.1999",
                                    "3.3.1999",
                                    "Wednesday, March 3, 1999",
                                    "Wed 3 Mar 1999",
                                    "Wednesday 3rd March 1999"};
  for (int f = 0; f < kDateFormats; ++f) CHECK(format_date(d, f) == want[f]);
  CHECK(format_date(d, 5, Casing::lower) == "3rd of march, 1999");
  CHECK(format_date(d, 14, Casing::upper) == "WEDNESDAY, MARCH 3, 1999");
  CHECK(iso_date(d) == "1999-03-03");
  CHECK(format_date({2011, 11, 11}, 2) == "November 11th, 2011");
  CHECK(format_date({2022, 12, 22}, 4) == "22nd December 2022");
  CHECK(format_date({1901, 1, 31}, 5) == "31st of January, 1901");
  CHECK_THROWS_AS(format_date(d, kDateFormats), Error);
  CHECK_THROWS_AS(format_date({1999, 2, 30}, 0), Error);
}

TEST_CASE("dates: no format of any date is longer than kMaxDateSourceLength") {
  size_t longest = 0;
  for (int y = kFirstYear; y <= kLastYear; y += 1)
    for (int m = 1; m <= 12; ++m)
      for (int day = 1; day <= days_in_month(y, m); ++day)
        for (int f = 0; f < kDateFormats; ++f)
          longest = std::max(longest, format_date({y, m, day}, f).size());
  CHECK(int64_t(longest) == kMaxDateSourceLength);
}

TEST_CASE("dates: generation is deterministic by seed, valid, and holds out unseen dates") {
  const DateSplits a = generate_dates(3000, 300, 7), b = generate_dates(3000, 300, 7);
  const DateSplits c = generate_dates(3000, 300, 8);
  REQUIRE(a.train.size() == 3000);
  REQUIRE(a.val.size() == 300);
  CHECK(dates_tsv(a.train) == dates_tsv(b.train));
  CHECK(dates_tsv(a.val) == dates_tsv(b.val));
  CHECK(dates_tsv(a.train) != dates_tsv(c.train));

  std::set<std::string> sources, train_targets;
  std::set<int> formats_seen;
  int lower = 0, upper = 0;
  for (const auto* split : {&a.train, &a.val})
    for (const DatePair& p : *split) {
      Date d;
      REQUIRE(parse_iso(p.target, d));
      CHECK(d == p.date);
      CHECK(is_valid_date(d));
      CHECK(d.year >= kFirstYear);
      CHECK(d.year <= kLastYear);
      CHECK(int64_t(p.source.size()) <= kMaxDateSourceLength);
      CHECK(sources.insert(p.source).second);  // no source twice, across both splits
      for (int f = 0; f < kDateFormats; ++f) {
        const std::string s = format_date(d, f);
        if (p.source == s) formats_seen.insert(f);
        lower += p.source != s && p.source == format_date(d, f, Casing::lower);
        upper += p.source != s && p.source == format_date(d, f, Casing::upper);
      }
      if (split == &a.train) train_targets.insert(p.target);
    }
  CHECK(formats_seen.size() == size_t(kDateFormats));
  CHECK(lower > 100);
  CHECK(upper > 100);
  for (const DatePair& p : a.val) CHECK(train_targets.count(p.target) == 0);
}

TEST_CASE("dates: the TSV loads as pairs, the held-out ones last") {
  const DateSplits d = generate_dates(60, 4, 3);
  const PairDataset ds =
      PairDataset::from_tsv(dates_tsv(d.train) + dates_tsv(d.val), {.val_fraction = 4.0 / 64.0});
  CHECK(ds.size(Split::train) == 60);
  CHECK(ds.size(Split::val) == 4);
  CHECK(dates_tsv({d.val[0]}) == d.val[0].source + "\t" + d.val[0].target + "\n");
}

TEST_CASE("dates: impossible requests are errors") {
  CHECK_THROWS_WITH_AS(generate_dates(10, 50000, 1), doctest::Contains("val examples"), Error);
  CHECK_THROWS_AS(generate_dates(-1, 1, 1), Error);
}

TEST_CASE("dates: configs/dates_encdec.toml validates on exactly the held-out pairs") {
  const io::Config c = io::load_config(QKV_SOURCE_DIR "/configs/dates_encdec.toml");
  // The defaults of `qkv data dates`: 63,000 training pairs, then 1,000 held out.
  CHECK(train_size(64000, c.data.val_fraction) == 63000);
  CHECK(c.model.block_size >= kMaxDateSourceLength);
  CHECK(c.model.block_size - 1 >= 10);  // "YYYY-MM-DD"; <eos> takes the last position
}
