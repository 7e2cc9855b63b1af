// Independent parse of tiny.gguf by HF's JavaScript GGUF parser (npm @huggingface/gguf@0.4.6), read by
// tests/gguf_test.cpp. Usage: copy it into a directory where `npm install @huggingface/gguf@0.4.6` ran, then
//   node parse_with_hf_gguf.mjs tiny.gguf > hf_gguf.json
import { gguf } from "@huggingface/gguf";
const path = process.argv[2];
const { metadata, tensorInfos, tensorDataOffset } = await gguf(path, { allowLocalFile: true, computeParametersCount: false });
const plain = (v) => (typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(plain) : v);
const meta = {};
for (const [k, v] of Object.entries(metadata)) meta[k] = plain(v);
console.log(JSON.stringify({ metadata: meta, tensorDataOffset: plain(tensorDataOffset),
  tensors: tensorInfos.map((t) => ({ name: t.name, shape: t.shape.map(plain), dtype: t.dtype, offset: plain(t.offset) })) }, null, 1));
