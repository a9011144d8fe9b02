// `aipe report`: the HTML page is self-contained and places every timed variant; rendered in headless
// Chromium (skipped, with the reason, where Chromium is absent) the screenshot is not blank and the
// parsed DOM holds the chart's SVG elements. Markdown summary and the CLI's exit codes.
#include <gtest/gtest.h>
#if AIPE_HAVE_ZLIB
#include <zlib.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "aipe/profile/html_report.hpp"
#include "app.hpp"

using namespace aipe;
using namespace aipe::profile;
namespace fs = std::filesystem;

namespace {

Result res(const std::string& ex, const std::string& v, double ms, double bytes, double flops, const char* unit) {
  Result r;
  r.example = ex;
  r.variant = v;
  r.sizes = {{"n", 1000003}};
  r.status = Status::passed;
  r.timing = "standard";
  r.timed = true;
  r.median_ms = ms;
  r.noise = 0.004;
  r.bytes = bytes;
  r.flops = flops;
  r.unit = unit;
  r.intensity = bytes > 0 ? flops / bytes : 0;
  r.gbps = bytes / (ms * 1e6);
  r.tflops = flops / (ms * 1e9);
  return r;
}

RunReport sample() {
  RunReport r;
  r.aipe_version = "0.1.0";
  r.git_revision = "abc";
  r.timestamp = "2026-11-25T12:00:00Z";
  r.command = "aipe run";
  DeviceInfo d;
  d.name = "NVIDIA H100 80GB HBM3";
  d.cc_major = 9;
  d.sm_count = 132;
  d.max_sm_clock_khz = 1980000;
  d.mem_clock_khz = 2619000;
  d.bus_width_bits = 5120;
  r.device = d;
  r.spec = derive_spec_peaks(d);
  r.results = {res("ch07/copy", "scalar", 1.0, 2.147e9, 0, ""), res("ch07/copy", "vec4", 0.75, 2.147e9, 0, ""),
               res("ch07/copy", "memcpy", 0.72, 2.147e9, 0, ""),
               res("ch10/gemm", "naive", 40.0, 4.0e8, 1.1e12, "bf16"), res("ch10/gemm", "wgmma", 1.6, 4.0e8, 1.1e12, "bf16"),
               res("ch10/gemm", "cublas", 1.5, 4.0e8, 1.1e12, "bf16"), res("ch08/reduce", "tree", 0.5, 1.07e9, 2.7e8, "fp32"),
               // no DRAM bytes and no FLOPs (launch latency), and FLOPs without DRAM bytes (register-resident)
               res("ch01/launch", "empty", 0.004, 0, 0, ""), res("ch02/fma_peak", "fma", 0.2, 0, 1.0e10, "fp32")};
  Result skipped;
  skipped.example = "ch10/gemm";
  skipped.variant = "clusters";
  skipped.status = Status::skipped;
  skipped.reason = "needs sm_90a";
  r.results.push_back(skipped);
  compute_speedups(r.results);
  return r;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

std::string html_of(const RunReport& r) {
  std::ostringstream s;
  write_html(s, {{"sample.json", r}});
  return s.str();
}

// Minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium writes): returns the number of
// pixels that are not (near) white and the number of distinct colours.
bool png_stats(const std::string& path, long* non_white, std::size_t* colours, std::string* why) {
#if !AIPE_HAVE_ZLIB
  (void)path, (void)non_white, (void)colours;
  *why = "built without zlib: cannot decode the screenshot";
  return false;
#else
  std::ifstream f(path, std::ios::binary);
  std::string d((std::istreambuf_iterator<char>(f)), {});
  if (d.size() < 8 || d.compare(1, 3, "PNG") != 0) return *why = "not a PNG", false;
  auto u32 = [&](std::size_t p) {
    return (std::uint32_t(std::uint8_t(d[p])) << 24) | (std::uint32_t(std::uint8_t(d[p + 1])) << 16) |
           (std::uint32_t(std::uint8_t(d[p + 2])) << 8) | std::uint32_t(std::uint8_t(d[p + 3]));
  };
  std::uint32_t w = 0, h = 0;
  int ctype = 0, depth = 0, interlace = 0;
  std::string idat;
  for (std::size_t p = 8; p + 8 <= d.size();) {
    const std::uint32_t len = u32(p);
    const std::string type = d.substr(p + 4, 4);
    if (type == "IHDR") {
      w = u32(p + 8);
      h = u32(p + 12);
      depth = std::uint8_t(d[p + 16]);
      ctype = std::uint8_t(d[p + 17]);
      interlace = std::uint8_t(d[p + 20]);
    } else if (type == "IDAT") {
      idat += d.substr(p + 8, len);
    }
    p += 12 + len;
  }
  if (depth != 8 || (ctype != 2 && ctype != 6) || interlace) return *why = "unsupported PNG format", false;
  const int bpp = ctype == 6 ? 4 : 3;
  const std::size_t stride = std::size_t(w) * bpp;
  std::vector<unsigned char> raw((stride + 1) * h);
  uLongf n = raw.size();
  if (uncompress(raw.data(), &n, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK || n != raw.size())
    return *why = "corrupt PNG data", false;
  std::vector<unsigned char> prev(stride, 0), cur(stride);
  std::set<std::uint32_t> cs;
  *non_white = 0;
  for (std::uint32_t y = 0; y < h; ++y) {
    const unsigned char* row = &raw[y * (stride + 1)];
    const int filter = row[0];
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(bpp) ? cur[x - bpp] : 0, b = prev[x], c = x >= std::size_t(bpp) ? prev[x - bpp] : 0;
      int pred = 0;
      switch (filter) {
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: break;
      }
      cur[x] = static_cast<unsigned char>(row[1 + x] + pred);
    }
    for (std::uint32_t x = 0; x < w; ++x) {
      const unsigned char* px = &cur[x * bpp];
      if (px[0] < 240 || px[1] < 240 || px[2] < 240) ++*non_white;
      cs.insert((std::uint32_t(px[0]) << 16) | (std::uint32_t(px[1]) << 8) | px[2]);
    }
    prev = cur;
  }
  *colours = cs.size();
  return true;
#endif
}

std::string find_chromium() {
  if (const char* p = std::getenv("AIPE_CHROMIUM"); p && *p) return p;
  for (const char* n : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    const std::string cmd = std::string("command -v ") + n + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return n;
  }
  return "";
}

}  // namespace

TEST(ReportHtml, SelfContainedAndPlacesEveryTimedVariant) {
  const RunReport r = sample();
  const std::string h = html_of(r);
  EXPECT_EQ(placed_variants(r), 9);
  EXPECT_EQ(count(h, "<circle class=\"point\""), 9u);  // one marker per timed variant
  EXPECT_EQ(count(h, "<svg class=\"roofline\""), 1u);
  EXPECT_EQ(count(h, "<svg class=\"bandwidth-roof\""), 1u);
  EXPECT_EQ(count(h, "<svg class=\"latency\""), 1u);
  EXPECT_EQ(count(h, "class=\"roof\""), 1u + 2u);  // DRAM line (bandwidth panel) + bf16 and fp32 roofs
  EXPECT_GE(count(h, "<rect class=\"bar\""), 5u);    // speedup bars: copy (3) and gemm (3)
  for (const char* v : {"scalar", "vec4", "memcpy", "naive", "wgmma", "cublas", "tree", "empty", "fma"})
    EXPECT_NE(h.find("data-variant=\"" + std::string(v) + "\""), std::string::npos) << v;
  EXPECT_NE(h.find("needs sm_90a"), std::string::npos);  // the skipped rung is in the table
  // self-contained: no scripts, no external resources
  EXPECT_EQ(h.find("<script"), std::string::npos);
  EXPECT_EQ(h.find("src="), std::string::npos);
  EXPECT_EQ(h.find("<link"), std::string::npos);
  EXPECT_EQ(count(h, "http"), count(h, "http://www.w3.org/2000/svg"));
}

TEST(ReportHtml, PointsSitUnderTheirRoof) {
  // The wgmma point (1.1 TFLOP / 1.6 ms = 687.5 TFLOP/s) must be drawn below the bf16 roof line.
  const std::string h = html_of(sample());
  auto attr = [&](std::size_t from, const std::string& name) {
    const auto p = h.find(name + "=\"", from) + name.size() + 2;
    return std::stod(h.substr(p, h.find('"', p) - p));
  };
  const auto pt = h.find("data-variant=\"wgmma\"");
  ASSERT_NE(pt, std::string::npos);
  const double cy = attr(pt, "cy");
  const auto roof_label = h.find("bf16 ");
  ASSERT_NE(roof_label, std::string::npos);
  const auto text = h.rfind("<text", roof_label);
  EXPECT_GT(cy, attr(text, "y"));  // SVG y grows downwards
}

TEST(ReportHtml, MarkdownSummary) {
  std::ostringstream s;
  write_report_markdown(s, {{"docs/results/h100.json", sample()}}, true);
  const std::string m = s.str();
  EXPECT_NE(m.find("| ch07/copy | vec4 |"), std::string::npos) << m;
  EXPECT_NE(m.find("| ch10/gemm | wgmma |"), std::string::npos) << m;
  EXPECT_NE(m.find("cublas"), std::string::npos);
  EXPECT_EQ(m.find("### ch07/copy"), std::string::npos);  // summary only
  std::ostringstream full;
  write_report_markdown(full, {{"x.json", sample()}}, false);
  EXPECT_NE(full.str().find("### ch07/copy"), std::string::npos);
}

TEST(ReportHtml, CliMalformedInputExitsTwo) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/trunc.json") << "{\"schema\": \"aipe.run/1\", \"results\": [{\"example\"";
  std::ofstream(dir + "/other.json") << "{\"hello\": 1}";
  for (const char* f : {"/trunc.json", "/other.json", "/absent.json"}) {
    std::ostringstream o, e;
    EXPECT_EQ(cli::run({"report", dir + f, "--html", dir + "/x.html"}, o, e), 2) << f;
    EXPECT_NE(e.str().find(f + 1), std::string::npos) << e.str();
  }
  {
    std::ofstream g(dir + "/good.json");
    write_json(g, sample());
  }
  std::ostringstream o, e;
  EXPECT_EQ(cli::run({"report", dir + "/good.json", "--html", dir + "/good.html", "--markdown", dir + "/good.md"}, o, e), 0)
      << e.str();
  EXPECT_TRUE(fs::file_size(dir + "/good.html") > 1000);
  EXPECT_NE(o.str().find("9 variants placed"), std::string::npos) << o.str();
}

TEST(ReportHtml, RendersInHeadlessChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "Chromium not installed (Debian package 'chromium'; scripts/setup.sh --chromium)";
  const fs::path dir = fs::path(::testing::TempDir()) / "aipe-report-render";
  fs::create_directories(dir);
  const fs::path html = dir / "report.html", png = dir / "shot.png", dom = dir / "dom.html";
  {
    std::ofstream f(html);
    write_html(f, {{"sample.json", sample()}});
  }
  fs::remove(png);
  const std::string flags = " --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run "
                            "--user-data-dir=" + (dir / "profile").string() + " --window-size=1000,1400 ";
  const std::string shot = chromium + flags + "--screenshot=" + png.string() + " file://" + html.string() + " >" +
                           (dir / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(shot.c_str()), 0) << shot;
  ASSERT_TRUE(fs::exists(png)) << "no screenshot written";
  long non_white = 0;
  std::size_t colours = 0;
  std::string why;
  ASSERT_TRUE(png_stats(png.string(), &non_white, &colours, &why)) << why;
  EXPECT_GT(non_white, 20000) << "screenshot is (nearly) blank";
  EXPECT_GT(colours, 8u) << "screenshot has too few colours to hold the chart";
  // The DOM Chromium parsed holds the chart's elements.
  const std::string dump = chromium + flags + "--dump-dom file://" + html.string() + " >" + dom.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(dump.c_str()), 0);
  std::ifstream f(dom);
  const std::string d((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(count(d, "<circle class=\"point\""), 9u);
  EXPECT_EQ(count(d, "<svg class=\"roofline\""), 1u);
  EXPECT_GE(count(d, "<path class=\"roof\""), 2u);
}
