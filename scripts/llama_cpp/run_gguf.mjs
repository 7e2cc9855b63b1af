// Runs a GGUF file in the real llama.cpp (node-llama-cpp's prebuilt CPU libraries, the version
// pinned in package.json) greedily from given token ids and writes what it produced as a Parity
// trace (reports/TRACES.md): per prompt the prompt ids, the chosen token after each step and the
// raw next-token logits of every step (FP32, full vocabulary, as llama.cpp's sampler sees them).
//
//   node scripts/llama_cpp/run_gguf.mjs MODEL.gguf --prompt-tokens 1,2,3 [--prompt-tokens ...]
//        --max-new-tokens 64 --out TRACE_DIR [--threads N (default 1)]
//
// Settings that keep llama.cpp's arithmetic close to an FP32 reference: CPU only, KV cache in F32
// (llama.cpp's default is F16), flash attention off, batch = whole prompt, one sequence. The chosen
// token is llama.cpp's own greedy sample (temperature 0); the script checks it is the argmax of the
// logits it records. EOS does not stop the stream (Parity's lockstep runs a fixed number of steps).
// Exit 2 on bad arguments or a model llama.cpp refuses, with the reason.
import fs from "node:fs";
import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function fail(message) {
  process.stderr.write(`run_gguf: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  // One thread by default: ggml's worker threads spin while they wait, and on a busy machine (CI,
  // two cores shared) two of them took 50 s for what one thread does in 3 s.
  const args = { prompts: [], maxNewTokens: 64, threads: 1, logits: true };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--prompt-tokens") {
      const ids = next().split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
      if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0)) {
        fail(`--prompt-tokens: expected comma-separated non-negative integers`);
      }
      args.prompts.push(ids);
    } else if (a === "--max-new-tokens") args.maxNewTokens = Number(next());
    else if (a === "--out") args.out = next();
    else if (a === "--threads") args.threads = Number(next());
    else if (a.startsWith("--")) fail(`unknown option ${a}`);
    else if (args.model === undefined) args.model = a;
    else fail(`unexpected argument ${a}`);
  }
  if (!args.model) fail("MODEL.gguf is required");
  if (!args.out) fail("--out TRACE_DIR is required");
  if (args.prompts.length === 0) fail("at least one --prompt-tokens is required");
  if (!Number.isInteger(args.maxNewTokens) || args.maxNewTokens < 1) fail("--max-new-tokens must be >= 1");
  if (!fs.existsSync(args.model)) fail(`${args.model}: no such file`);
  return args;
}

// safetensors: u64 header length, JSON header padded with spaces to a multiple of 8, data.
function writeSafetensors(file, tensors) {
  const header = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.byteLength;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " ";
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const parts = [length, Buffer.from(json)];
  for (const t of tensors) parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  fs.writeFileSync(file, Buffer.concat(parts));
}

function packageVersion(name) {
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules", name, "package.json");
  return JSON.parse(fs.readFileSync(file, "utf8")).version;
}

const args = parseArgs(process.argv.slice(2));
let llama, model, context;
try {
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: path.resolve(args.model), gpuLayers: 0 });
  const longest = Math.max(...args.prompts.map((p) => p.length));
  context = await model.createContext({
    contextSize: Math.max(64, longest + args.maxNewTokens + 8),
    batchSize: Math.max(32, longest),
    sequences: 1,
    threads: args.threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
} catch (error) {
  fail(`llama.cpp refused ${args.model}: ${error.message}`);
}
const vocab = (model.fileInfo.tensorInfo ?? []).find((t) => t.name === "token_embd.weight")?.dimensions[1];
const vocabSize = Number(vocab ?? model.tokens.length ?? 0);
if (!vocabSize) fail(`${args.model}: cannot tell the vocabulary size`);

const tensors = [];
const prompts = [];
const generateNext = { token: true, logits: args.logits, options: { temperature: 0 } };
for (let p = 0; p < args.prompts.length; ++p) {
  const promptIds = args.prompts[p];
  const sequence = context.getSequence();
  const tokens = [];
  const logits = args.logits ? new Float32Array(args.maxNewTokens * vocabSize) : null;
  let input = promptIds.map((id, i) => (i + 1 === promptIds.length ? [id, { generateNext }] : id));
  for (let step = 0; step < args.maxNewTokens; ++step) {
    const results = await sequence.controlledEvaluate(input);
    const next = results[results.length - 1]?.next;
    if (next?.token == null) fail(`step ${step}: llama.cpp returned no token`);
    if (args.logits) {
      const row = logits.subarray(step * vocabSize, (step + 1) * vocabSize);
      row.fill(-Infinity);
      for (const [id, value] of next.logits) row[id] = value;
      let best = 0;
      for (let i = 1; i < vocabSize; ++i) if (row[i] > row[best]) best = i;
      if (best !== next.token && row[best] !== row[next.token]) {
        fail(`step ${step}: llama.cpp sampled ${next.token} but the argmax of its logits is ${best}`);
      }
    }
    tokens.push(next.token);
    input = [[next.token, { generateNext }]];
  }
  sequence.dispose();
  tensors.push({ name: `p${p}.prompt_tokens`, dtype: "I64", shape: [promptIds.length],
                 data: BigInt64Array.from(promptIds.map(BigInt)) });
  tensors.push({ name: `p${p}.tokens`, dtype: "I64", shape: [tokens.length],
                 data: BigInt64Array.from(tokens.map(BigInt)) });
  if (args.logits) tensors.push({ name: `p${p}.logits`, dtype: "F32", shape: [tokens.length, vocabSize], data: logits });
  prompts.push({ name: `p${p}`, prompt_tokens: promptIds.length, steps: tokens.length });
}

const trace = {
  format: "parity-trace",
  version: 1,
  producer: {
    engine: "llama.cpp",
    engine_version: `node-llama-cpp ${packageVersion("node-llama-cpp")}, @node-llama-cpp/linux-x64 ${packageVersion("@node-llama-cpp/linux-x64")}, llama.cpp ${llama.llamaCppRelease.repo} ${llama.llamaCppRelease.release} (${llama.buildType}, CPU)`,
    model: path.resolve(args.model),
    dtype: "fp32",
    device: "cpu",
    settings: { kv_cache: "F32", flash_attention: false, threads: args.threads, sampling: "greedy (temperature 0)",
                gpu: llama.gpu, build: llama.buildType, system_info: llama.systemInfo },
  },
  vocab_size: vocabSize,
  content: "logits",
  top_k: null,
  mode: "free",
  prompts,
};
fs.mkdirSync(args.out, { recursive: true });
const tmp = path.join(args.out, `.trace.tmp.${process.pid}`);
writeSafetensors(tmp, tensors);
fs.renameSync(tmp, path.join(args.out, "trace.safetensors"));
fs.writeFileSync(tmp, JSON.stringify(trace, null, 2) + "\n");
fs.renameSync(tmp, path.join(args.out, "trace.json"));
await context.dispose();
await model.dispose();
await llama.dispose();
