// Entity-tag lists, byte ranges and Accept-Encoding, parsed without allocating.
#include "worker/static_request.hpp"

#include <charconv>

#include "worker/ascii.hpp"

namespace preforkd {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// The next element of a comma list (RFC 9110 5.6.1: empty elements are skipped);
// false at the end.
bool next_element(std::string_view* list, std::string_view* element) {
  while (!list->empty()) {
    auto comma = list->find(',');
    std::string_view e = trim(list->substr(0, comma));
    list->remove_prefix(comma == std::string_view::npos ? list->size() : comma + 1);
    if (!e.empty()) {
      *element = e;
      return true;
    }
  }
  return false;
}

// Digits only; a number too large for 64 bits saturates (it is past any file).
bool parse_position(std::string_view digits, std::uint64_t* out) {
  if (digits.empty()) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  if (ec == std::errc::result_out_of_range) *out = UINT64_MAX;
  return true;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths;
// -1 if malformed.
int parse_qvalue(std::string_view q) {
  if (q.empty() || (q[0] != '0' && q[0] != '1')) return -1;
  int value = (q[0] - '0') * 1000;
  if (q.size() == 1) return value;
  if (q[1] != '.' || q.size() > 5) return -1;
  int scale = 100;
  for (char c : q.substr(2)) {
    if (c < '0' || c > '9') return -1;
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value > 1000 ? -1 : value;
}

// The q of one Accept-Encoding element's parameters (";q=0.5"); 1000 if none.
int quality_of(std::string_view params) {
  int q = 1000;
  std::string_view rest = params;
  while (!rest.empty()) {
    auto semi = rest.find(';');
    std::string_view param = trim(rest.substr(0, semi));
    rest.remove_prefix(semi == std::string_view::npos ? rest.size() : semi + 1);
    if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') q = parse_qvalue(trim(param.substr(2)));
  }
  return q;
}

}  // namespace

bool etag_list_matches(std::string_view list, std::string_view etag, bool strong) {
  list = trim(list);
  if (list == "*") return true;
  const bool ours_weak = etag.starts_with("W/");
  std::string_view ours = ours_weak ? etag.substr(2) : etag;
  while (!list.empty()) {
    while (!list.empty() && (is_ows(list.front()) || list.front() == ',')) list.remove_prefix(1);
    if (list.empty()) break;
    bool weak = false;
    if (list.starts_with("W/")) {
      weak = true;
      list.remove_prefix(2);
    }
    if (list.empty() || list.front() != '"') return false;
    auto close = list.find('"', 1);
    if (close == std::string_view::npos) return false;
    std::string_view tag = list.substr(0, close + 1);
    list.remove_prefix(close + 1);
    if (tag == ours && (!strong || (!weak && !ours_weak))) return true;
  }
  return false;
}

RangeAnswer parse_range(std::string_view value, std::uint64_t size, ByteRange* range) {
  value = trim(value);
  if (value.size() < 6 || !iequals(value.substr(0, 6), "bytes=")) return RangeAnswer::whole;
  std::string_view set = value.substr(6);
  int specs = 0, satisfiable = 0;
  ByteRange first_ok;
  std::string_view spec;
  while (next_element(&set, &spec)) {
    ++specs;
    auto dash = spec.find('-');
    if (dash == std::string_view::npos) return RangeAnswer::whole;
    std::string_view from = spec.substr(0, dash), to = spec.substr(dash + 1);
    ByteRange r;
    if (from.empty()) {
      // "-N": the last N bytes.
      std::uint64_t n = 0;
      if (!parse_position(to, &n)) return RangeAnswer::whole;
      if (n == 0 || size == 0) continue;
      r = {size - std::min(n, size), size - 1};
    } else {
      std::uint64_t a = 0, b = UINT64_MAX;
      if (!parse_position(from, &a)) return RangeAnswer::whole;
      if (!to.empty() && !parse_position(to, &b)) return RangeAnswer::whole;
      if (b < a) return RangeAnswer::whole;  // invalid: the whole header is ignored
      if (a >= size) continue;
      r = {a, std::min(b, size - 1)};
    }
    if (satisfiable++ == 0) first_ok = r;
  }
  if (specs == 0) return RangeAnswer::whole;
  if (satisfiable == 0) return RangeAnswer::unsatisfiable;
  if (specs > 1) return RangeAnswer::several;
  *range = first_ok;
  return RangeAnswer::partial;
}

bool accepts_gzip(std::string_view accept_encoding) {
  int gzip = -1, any = -1;  // q in thousandths; -1: not listed
  std::string_view list = accept_encoding, element;
  while (next_element(&list, &element)) {
    auto semi = element.find(';');
    std::string_view coding = trim(element.substr(0, semi));
    int q = semi == std::string_view::npos ? 1000 : quality_of(element.substr(semi + 1));
    if (q < 0) q = 0;  // a malformed q-value does not say yes
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) gzip = std::max(gzip, q);
    if (coding == "*") any = std::max(any, q);
  }
  if (gzip >= 0) return gzip > 0;
  return any > 0;
}

}  // namespace preforkd
