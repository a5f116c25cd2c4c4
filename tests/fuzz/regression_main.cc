// The regression runner linked with each fuzz target's LLVMFuzzerTestOneInput in every build
// (gcc or clang, sanitized or not): feeds it every file of the directories (or files) named on
// the command line, so past crashes and the seed corpus run as ordinary CTests.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const std::span<char*> args(argv, static_cast<size_t>(argc));
  size_t inputs = 0;
  for (const char* arg : args.subspan(1)) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(arg))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(arg, ec)) {
      files.emplace_back(arg);
    }  // a missing directory (no regressions yet) is fine
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      // A heap copy of exactly the input's size, so ASan sees reads past its end.
      const auto buf = std::make_unique_for_overwrite<uint8_t[]>(bytes.empty() ? 1 : bytes.size());
      std::ranges::copy(bytes, buf.get());
      LLVMFuzzerTestOneInput(buf.get(), bytes.size());
      ++inputs;
    }
  }
  std::printf("%zu inputs ran\n", inputs);
  return 0;
}
