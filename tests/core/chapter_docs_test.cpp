// The chapter notes (docs/chNN.md) list each example's ladder; this test keeps them equal to the
// registry so that the docs cannot drift from the code. A note opts in with the marker line
//   <!-- ladders checked against the registry -->
// and then lists examples of its chapter, each a heading "### chNN/name" followed by a table whose rows
// begin "| <rung number> | `variant` |", in ladder order. A documented ladder must equal the code's; an
// example not yet documented is only noted, so that adding an example stays a one-file change.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "aipe/registry.hpp"

namespace {

namespace fs = std::filesystem;
constexpr const char* kMarker = "<!-- ladders checked against the registry -->";

struct Note {
  std::vector<std::string> order;                          // ids in the order they appear
  std::map<std::string, std::vector<std::string>> rungs;   // id -> variant names in order
  std::vector<std::string> problems;
};

Note parse(const std::string& text) {
  Note n;
  static const std::regex heading(R"(^###\s+(ch\d\d/[a-z0-9_]+)\s*$)");
  static const std::regex row(R"(^\|\s*(\d+)\s*\|\s*`([a-z0-9_]+)`\s*\|)");
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, heading)) {
      current = m[1];
      if (n.rungs.count(current)) n.problems.push_back("example listed twice: " + current);
      n.rungs[current];
      n.order.push_back(current);
    } else if (std::regex_search(line, m, row)) {
      if (current.empty()) {
        n.problems.push_back("rung row before any example heading: " + line);
        continue;
      }
      auto& v = n.rungs[current];
      const std::size_t number = std::stoul(m[1]);
      if (number != v.size() + 1)
        n.problems.push_back(current + ": rung " + std::string(m[2]) + " is numbered " + std::string(m[1]) +
                             ", expected " + std::to_string(v.size() + 1));
      v.push_back(m[2]);
    }
  }
  return n;
}

std::vector<fs::path> checked_notes() {
  std::vector<fs::path> out;
  const fs::path docs = fs::path(AIPE_SOURCE_DIR) / "docs";
  if (!fs::exists(docs)) return out;
  for (const auto& e : fs::directory_iterator(docs)) {
    const std::string name = e.path().filename().string();
    // docs/chNN.md, and the further notes of a chapter split in parts: docs/chNN-topic.md.
    if (!std::regex_match(name, std::regex(R"(ch\d\d(-[a-z0-9]+)?\.md)"))) continue;
    std::ifstream f(e.path());
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().find(kMarker) != std::string::npos) out.push_back(e.path());
  }
  return out;
}

}  // namespace

TEST(ChapterDocs, ParserReadsHeadingsAndRungRows) {
  const Note n = parse("intro\n### ch07/copy\n| # | rung |\n|---|---|\n| 1 | `scalar` | x |\n| 2 | `vec4` | y |\n"
                       "### ch07/other\n| 1 | `a` | z |\n| 3 | `b` | w |\n");
  ASSERT_EQ(n.order.size(), 2u);
  EXPECT_EQ(n.rungs.at("ch07/copy"), (std::vector<std::string>{"scalar", "vec4"}));
  EXPECT_EQ(n.rungs.at("ch07/other"), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(n.problems.size(), 1u) << "a skipped rung number is reported";
}

TEST(ChapterDocs, OurChapterNotesAreChecked) {
  // The notes of chapters 6-8 carry the marker; losing it would silently turn this test off.
  const auto notes = checked_notes();
  for (const char* ch : {"ch06.md", "ch07.md", "ch08.md", "ch10.md", "ch10-fp8.md"}) {
    bool found = false;
    for (const auto& p : notes) found = found || p.filename() == ch;
    EXPECT_TRUE(found) << "docs/" << ch << " is missing or lacks the marker line";
  }
}

TEST(ChapterDocs, LaddersMatchTheRegistry) {
  // A chapter's checked notes (chNN.md and chNN-*.md) together document its examples, each once.
  std::map<std::string, Note> chapters;
  for (const fs::path& p : checked_notes()) {
    SCOPED_TRACE(p.string());
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    const Note part = parse(ss.str());
    for (const auto& problem : part.problems) ADD_FAILURE() << problem;
    Note& note = chapters[p.stem().string().substr(0, 4)];  // "ch07"
    for (const auto& id : part.order) {
      if (note.rungs.count(id)) ADD_FAILURE() << id << " is documented in more than one note of its chapter";
      note.order.push_back(id);
      note.rungs[id] = part.rungs.at(id);
    }
  }
  for (const auto& [chapter, note] : chapters) {
    SCOPED_TRACE(chapter);
    std::vector<std::string> registered;
    for (const auto* e : aipe::Registry::instance().match(chapter)) {
      registered.push_back(e->info.id);
      auto it = note.rungs.find(e->info.id);
      if (it == note.rungs.end()) {
        // Not a failure: adding an example stays a one-file change. What a note does say about a
        // ladder must match the code exactly (below).
        std::cout << "[ NOTE ] " << e->info.id << " is registered but not yet in the notes of " << chapter << "\n";
        continue;
      }
      EXPECT_EQ(it->second, e->variant_names) << e->info.id << ": the documented rungs differ from the registry's";
    }
    for (const auto& id : note.order)
      if (std::find(registered.begin(), registered.end(), id) == registered.end())
        ADD_FAILURE() << id << " is documented but not registered";
  }
}
