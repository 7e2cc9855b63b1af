// Reference ids from HF's own Rust tokenizer (npm `tokenizers`, prebuilt), for the golden files that
// tests/tokenizer_json_test.cpp reads. Usage (make_goldens.sh runs it):
//   node reference_ids.mjs TOKENIZER_JSON CORPUS_JSON OUT_JSON
// CORPUS_JSON: {"texts": [...]}. OUT_JSON: {"reference": "tokenizers@VERSION", "cases": [{"text",
// "ids", "ids_with_special", "decoded"}]} where ids are encode(text, addSpecialTokens=false),
// ids_with_special the same with addSpecialTokens=true, decoded = decode(ids, skipSpecial=false).
import { createRequire } from "module";
import fs from "fs";
const require = createRequire(process.cwd() + "/");
const { Tokenizer } = require("tokenizers");
const version = require("tokenizers/package.json").version;

const [tokenizerPath, corpusPath, outPath] = process.argv.slice(2);
const tokenizer = Tokenizer.fromFile(tokenizerPath);
const corpus = JSON.parse(fs.readFileSync(corpusPath, "utf8"));
const cases = [];
for (const text of corpus.texts) {
  const plain = await tokenizer.encode(text, null, { addSpecialTokens: false });
  const special = await tokenizer.encode(text, null, { addSpecialTokens: true });
  const ids = plain.getIds();
  cases.push({
    text,
    ids,
    ids_with_special: special.getIds(),
    tokens: plain.getTokens(),
    decoded: await tokenizer.decode(ids, false),
  });
}
fs.writeFileSync(outPath, JSON.stringify({ reference: `tokenizers@${version} (npm)`, cases }, null, 1) + "\n");
console.log(`${outPath}: ${cases.length} texts`);
