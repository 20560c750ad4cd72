// Date normalisation pairs: calendar arithmetic, the source formats, and the seeded generator.
#include "qkv/data/dates.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <unordered_set>

#include "qkv/error.h"
#include "qkv/rng.h"

namespace qkv::data {
namespace {

const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};
const char* const kWeekdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                 "Friday", "Saturday", "Sunday"};

// Days from 1970-01-01 to d (negative before): Howard Hinnant's days_from_civil.
int64_t days_from_civil(const Date& d) {
  const int64_t y = d.year - (d.month <= 2);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (d.month + (d.month > 2 ? -3 : 9)) + 2) / 5 + d.day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::string ordinal(int day) {
  const char* suffix = "th";
  if (day / 10 != 1) {
    if (day % 10 == 1) suffix = "st";
    if (day % 10 == 2) suffix = "nd";
    if (day % 10 == 3) suffix = "rd";
  }
  return fmt::format("{}{}", day, suffix);
}

// The formats of dates.h, in its order. month: "March", mon: "Mar", weekday: "Wednesday",
// wd: "Wed", nth: "3rd", day: 3, m: 3 (the month's number), year: 1999.
const char* const kFormats[kDateFormats] = {"{month} {day} {year}",
                                            "{month} {day}, {year}",
                                            "{month} {nth}, {year}",
                                            "{day} {month} {year}",
                                            "{nth} {month} {year}",
                                            "{nth} of {month}, {year}",
                                            "the {nth} of {month} {year}",
                                            "{mon} {day}, {year}",
                                            "{day} {mon} {year}",
                                            "{day:02}-{mon}-{year}",
                                            "{year} {month} {day}",
                                            "{year}/{m:02}/{day:02}",
                                            "{day:02}.{m:02}.{year}",
                                            "{day}.{m}.{year}",
                                            "{weekday}, {month} {day}, {year}",
                                            "{wd} {day} {mon} {year}",
                                            "{weekday} {nth} {month} {year}"};

// Formats without letters, which casing leaves alone.
bool numeric_format(int format) { return format == 11 || format == 12 || format == 13; }

// The n-th day (from 0) of kFirstYear-01-01 .. kLastYear-12-31.
Date nth_date(int64_t n) {
  Date d{kFirstYear, 1, 1};
  for (int len; n >= (len = is_leap_year(d.year) ? 366 : 365); n -= len) ++d.year;
  for (int len; n >= (len = days_in_month(d.year, d.month)); n -= len) ++d.month;
  d.day = int(n) + 1;
  return d;
}

int64_t total_days() {
  return days_from_civil({kLastYear, 12, 31}) - days_from_civil({kFirstYear, 1, 1}) + 1;
}

DatePair random_pair(const Date& d, Rng& rng) {
  const int format = int(rng.below(kDateFormats));
  const float c = rng.uniform();
  const Casing casing = numeric_format(format) || c < 0.7f ? Casing::as_is
                        : c < 0.85f                        ? Casing::lower
                                                           : Casing::upper;
  return {format_date(d, format, casing), iso_date(d), d};
}

}  // namespace

bool is_leap_year(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : kDays[month - 1];
}

bool is_valid_date(const Date& d) {
  return d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= days_in_month(d.year, d.month);
}

// 1970-01-01 was a Thursday (3).
int weekday(const Date& d) {
  const int64_t w = (days_from_civil(d) + 3) % 7;
  return int(w < 0 ? w + 7 : w);
}

std::string iso_date(const Date& d) {
  return fmt::format("{:04}-{:02}-{:02}", d.year, d.month, d.day);
}

std::string format_date(const Date& d, int format, Casing casing) {
  QKV_CHECK(format >= 0 && format < kDateFormats, "format_date: format {} is outside [0, {})",
            format, kDateFormats);
  QKV_CHECK(is_valid_date(d), "format_date: {} is not a valid date", iso_date(d));
  const std::string month = kMonths[d.month - 1], mon = month.substr(0, 3);
  const std::string wday = kWeekdays[weekday(d)], wd = wday.substr(0, 3), nth = ordinal(d.day);
  std::string s =
      fmt::format(fmt::runtime(kFormats[format]), fmt::arg("month", month), fmt::arg("mon", mon),
                  fmt::arg("weekday", wday), fmt::arg("wd", wd), fmt::arg("nth", nth),
                  fmt::arg("day", d.day), fmt::arg("m", d.month), fmt::arg("year", d.year));
  if (casing == Casing::lower)
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (casing == Casing::upper)
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

DateSplits generate_dates(int64_t n_train, int64_t n_val, uint64_t seed) {
  const int64_t days = total_days();
  QKV_CHECK(
      n_train >= 0 && n_val >= 0 && n_val <= days / 2,
      "dates: need 0 <= val examples <= {} (half the {} days of {}..{}), got {} train, {} val",
      days / 2, days, kFirstYear, kLastYear, n_train, n_val);
  Rng rng(seed);
  DateSplits out;
  std::set<int64_t> val_days;
  while (int64_t(val_days.size()) < n_val) {
    const int64_t n = int64_t(rng.below(uint64_t(days)));
    if (val_days.insert(n).second) out.val.push_back(random_pair(nth_date(n), rng));
  }
  // Rejection sampling; the budget only ends a request for more distinct sources than the
  // remaining dates can give (about 3 million), which would otherwise loop for ever.
  std::unordered_set<std::string> sources;
  for (int64_t tries = 0; int64_t(out.train.size()) < n_train; ++tries) {
    QKV_CHECK(tries < 20 * n_train + 1000,
              "dates: could not draw {} distinct training sources; ask for fewer", n_train);
    const int64_t n = int64_t(rng.below(uint64_t(days)));
    if (val_days.contains(n)) continue;
    DatePair p = random_pair(nth_date(n), rng);
    if (sources.insert(p.source).second) out.train.push_back(std::move(p));
  }
  return out;
}

std::string dates_tsv(const std::vector<DatePair>& pairs) {
  std::string tsv;
  for (const DatePair& p : pairs) tsv += p.source + '\t' + p.target + '\n';
  return tsv;
}

}  // namespace qkv::data
