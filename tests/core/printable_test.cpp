#include "aipe/printable.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "aipe/profile/compare.hpp"

namespace {

using aipe::printable;

TEST(Printable, KeepsTextAndUtf8) {
  EXPECT_EQ(printable("ch07/copy_ladder vec4"), "ch07/copy_ladder vec4");
  EXPECT_EQ(printable("812.4 \xc2\xb5s \xe2\x80\x94 H100 \xf0\x9f\x9a\x80"), "812.4 \xc2\xb5s \xe2\x80\x94 H100 \xf0\x9f\x9a\x80");
}

TEST(Printable, EscapesControlsC1AndBrokenUtf8) {
  EXPECT_EQ(printable("\x1b[31mred\x07"), "\\x1b[31mred\\x07");
  EXPECT_EQ(printable("a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
  EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");      // U+009B, CSI
  EXPECT_EQ(printable("\x9b" "2J"), "\\x9b2J");               // a raw C1 byte
  EXPECT_EQ(printable("\xe2\x80"), "\\xe2\\x80");             // truncated sequence
  EXPECT_EQ(printable("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");    // never valid
  EXPECT_EQ(printable("back\\slash"), "back\\\\slash");       // so an escape cannot be faked
}

TEST(CompareOptions, NonFiniteOrNegativeAreRejected) {
  const aipe::RunReport r;
  for (double bad : {double(NAN), double(INFINITY), -1.0}) {
    EXPECT_THROW(aipe::profile::compare(r, r, {bad, 2.0}), std::invalid_argument) << bad;
    EXPECT_THROW(aipe::profile::compare(r, r, {5.0, bad}), std::invalid_argument) << bad;
  }
  EXPECT_NO_THROW(aipe::profile::compare(r, r, {0.0, 0.0}));
}

}  // namespace
