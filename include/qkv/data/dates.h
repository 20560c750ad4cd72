// Date normalisation: a sequence-to-sequence task the project generates itself. A date written
// in one of many human formats becomes ISO 8601: "3rd of March, 1999" -> "1999-03-03". Every
// format is unambiguous (no two-digit years, numeric forms only as year/month/day or
// day.month.year), so a perfect model exists; reordering fields and spelling out months need
// attention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv::data {

struct Date {
  int year = 2000, month = 1, day = 1;
  bool operator==(const Date&) const = default;
};

inline constexpr int kFirstYear = 1900, kLastYear = 2099;
// No source is longer than this many characters ("Wednesday, September 30, 1999").
inline constexpr int64_t kMaxDateSourceLength = 29;

bool is_leap_year(int year);
int days_in_month(int year, int month);  // month 1..12
bool is_valid_date(const Date& d);
int weekday(const Date& d);           // 0 = Monday .. 6 = Sunday (proleptic Gregorian)
std::string iso_date(const Date& d);  // "1999-03-03"

// The formats, in the casing shown; format_date may then lower- or upper-case the words.
//   "March 3 1999"   "March 3, 1999"   "March 3rd, 1999"   "3 March 1999"   "3rd March 1999"
//   "3rd of March, 1999"   "the 3rd of March 1999"   "Mar 3, 1999"   "3 Mar 1999"
//   "03-Mar-1999"   "1999 March 3"   "1999/03/03" (year/month/day)   "03.03.1999" and
//   "3.3.1999" (day.month.year)   "Wednesday, March 3, 1999"   "Wed 3 Mar 1999"
//   "Wednesday 3rd March 1999"
inline constexpr int kDateFormats = 17;
enum class Casing { as_is, lower, upper };
// d in format (0 <= format < kDateFormats) and casing; the weekday is d's true weekday.
std::string format_date(const Date& d, int format, Casing casing = Casing::as_is);

struct DatePair {
  std::string source, target;  // target = iso_date(date)
  Date date;
};
struct DateSplits {
  std::vector<DatePair> train, val;
};

// n_train + n_val examples of dates drawn uniformly from kFirstYear-01-01 .. kLastYear-12-31,
// formats uniformly, casing as-is 70%, lower 15%, upper 15% (formats with words only), all
// from `seed`. No source appears twice, and no val DATE appears in train (so val also tests
// dates never seen in any format). Throws qkv::Error when the counts cannot be met.
DateSplits generate_dates(int64_t n_train, int64_t n_val, uint64_t seed);

// "source<TAB>target\n" lines, the format PairDataset reads.
std::string dates_tsv(const std::vector<DatePair>& pairs);

}  // namespace qkv::data
