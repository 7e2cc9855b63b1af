"""Writes the tokenizer test corpus (tests/data/tokenizers/corpus.json): multilingual text, digits,
whitespace runs, newlines, emoji, decomposed accents (NFC), unusual spaces and special tokens."""
import json
import sys

texts = [
    "who are you",
    "",
    " ",
    "\n",
    "Hello, world! How's it going? I'm fine; they'll see, we'd know. You've been here.",
    "IT'S HE'LL WE'VE I'M YOU'D SHE'S DON'T 'S 'T 'RE",
    "你好，世界！我是一个大型语言模型。今天天气怎么样？",
    "こんにちは、世界。東京タワーは高さ333メートルです。カタカナとひらがな",
    "안녕하세요 세계, 반갑습니다",
    "مرحبا بالعالم، كيف حالك؟ ١٢٣٤ ٥٦",
    "Ça va? Élève, où est l'hôtel? Ångström façade naïve crème brûlée",
    "Cafe\u0301 cre\u0300me bru\u0302le\u0301e A\u030angstro\u0308m",  # decomposed: NFC composes
    "\ufb01ne \u2126 \u212b \u00bd x\u00b2",  # ligature, ohm, angstrom sign, one half, superscript
    "1234567890 3.14159 2023-11-28 1,000,000 12345678901234567890 007",
    "a  b   c    d\t\tend   ",
    "    leading spaces",
    "trailing   ",
    "\n\n\n",
    "line1\r\nline2\n\n  indented\n\t\ttabs\n   \n",
    "😀🎉👍🏽 👨‍👩‍👧‍👦 family ❤️ 🇨🇳 🤖!",
    "def f(x):\n    return x**2  # square\n\nif __name__ == '__main__':\n\tprint(f(3))\n",
    "a\u00a0b\u3000c\u2009d\u200be\u2028f\u0085g",
    "Ünïcödé ΑΒΓ αβγ Привет мир עברית हिन्दी ไทย",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!!!!!!???? ==================",
    "<|im_start|>user\nwho are you<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text<|im_end|>  <|im_start|>  x",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>",
    "[MASK] the  [MASK]  word words sword <rs>   next Héllo He\u0301llo end",
    "The licensee may copy and distribute the program.\nSection 3: conditions apply to all copies.",
]
# Random mixtures (fixed seed): every script, space kind and punctuation class above, next to each
# other in unusual orders, where pre-tokenizer regex differences would show.
import random
rng = random.Random(1128)
pool = list("aAzZéÉßøœ ΩωЖж中文日本語ひらカナ한국ع٣١0123456789 \t\n\r\u00a0\u3000\u2009\u200b"
            ".,;:!?'\"-_()[]{}<>/\\@#$%^&*+=~`|😀👍🏽🇨🇳\u0301\u0300")
pool += ["'s", "'ll", "'RE", "  ", "\n\n", " \n", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
         "<|eot_id|>", "[MASK]", "<rs>", " word ", "--", "2023", "e\u0301"]
for _ in range(40):
    texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))

json.dump({"texts": texts}, open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False, indent=1)
open(sys.argv[1], "a").write("\n")
