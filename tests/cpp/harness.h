// Minimal test harness for the torch-free core: CHECK records failures, main() returns their count.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace harness {

inline int& failures() {
  static int count = 0;
  return count;
}

inline std::vector<std::pair<std::string, std::function<void()>>>& registry() {
  static std::vector<std::pair<std::string, std::function<void()>>> tests;
  return tests;
}

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};

inline int run_all() {
  for (auto& [name, fn] : registry()) {
    int before = failures();
    fn();
    std::printf("%s %s\n", failures() == before ? "PASS" : "FAIL", name.c_str());
  }
  std::printf("%d failures\n", failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace harness

#define TEST_CASE(name)                                        \
  static void name();                                          \
  static harness::Register name##_registration(#name, name);   \
  static void name()

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);     \
      ++harness::failures();                                                     \
    }                                                                            \
  } while (0)

#define TEST_MAIN() \
  int main() { return harness::run_all(); }
