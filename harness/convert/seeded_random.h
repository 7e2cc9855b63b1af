// A random number generator whose output is fixed by this file alone: fixtures made from a seed must
// have the same bytes on every machine and with every libtorch version, so libtorch's generators
// (whose algorithms and call patterns change between releases) are not used.
#pragma once

#include <cstdint>
#include <string_view>

namespace parity::convert {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a constant and mixed; every seed,
// including 0, gives a full-period stream of well-distributed 64-bit values.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n); the modulo bias is below 2^-40 for the small n used here.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// Approximately standard normal values: the sum of 12 uniforms minus 6 (Irwin-Hall; mean 0,
// variance 1, bounded by +-6, which suits weight initialisation). Box-Muller would need log, sin and
// cos, whose last bits differ between math libraries; additions of doubles are exactly rounded by
// IEEE 754, so these values are the same on every machine.
class NormalGenerator {
 public:
  explicit NormalGenerator(uint64_t seed) : uniform_(seed) {}

  double Next() {
    double sum = 0.0;
    for (int i = 0; i < 12; ++i) sum += uniform_.Uniform();
    return sum - 6.0;
  }

 private:
  SplitMix64 uniform_;
};

// FNV-1a, 64-bit: a stable hash of a tensor name, so each tensor's stream depends only on the seed
// and its name, not on the order tensors are generated in.
inline uint64_t Fnv1a64(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001B3ULL;
  }
  return hash;
}

}  // namespace parity::convert
