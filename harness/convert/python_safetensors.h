// Safetensors files byte-identical to what Python's `safetensors.torch.save_file(tensors, path,
// metadata={"format": "pt"})` writes (as transformers' save_pretrained and convert2llama do).
//
// The reference library (safetensors/src/tensor.rs, `prepare`) sorts the entries by dtype in
// descending order of its Dtype enum (BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < F16 < BF16 < I32 <
// F32 < F64 < I64), then by name, lays the data out in that order, and writes the header as compact
// JSON with "__metadata__" first and each entry as {"dtype", "shape", "data_offsets"}, padded with
// spaces to a multiple of 8. io::WriteSafetensors writes that layout for the order it is given, so
// sorting here is all that is needed.
#pragma once

#include <string>
#include <vector>

#include "harness/io/safetensors.h"

namespace parity::convert {

// Sorts `tensors` into the reference library's order (see above).
void SortLikePythonSafetensors(std::vector<io::NamedTensor>& tensors);

// Sorts and writes atomically with the metadata {"format": "pt"}.
void WriteSafetensorsLikePython(const std::string& path, std::vector<io::NamedTensor> tensors);

}  // namespace parity::convert
