#!/usr/bin/env python3
"""Compares aipe's tokenizer with Hugging Face `tokenizers` (the reference implementation) on a corpus.

For every text: the ids of `aipe tokenize --jsonl` must equal `tokenizers`' encode(text).ids, both without and
with add_special_tokens, and aipe must decode them back to the text. Exit 0 when all match, 1 on any mismatch
(the first ones are printed with the text, both id lists and the first differing position), 2 on bad usage.

  scripts/tokenizer_oracle.py --tokenizer PATH/tokenizer.json [--corpus FILE]... [--aipe build/bin/aipe]
  scripts/tokenizer_oracle.py --train [--vocab 4000] [--corpus FILE]...     # no tokenizer.json at hand

--tokenizer takes a real tokenizer.json (Llama 3, GPT-2, ...; copy one onto the machine: nothing is downloaded).
--train instead trains a Llama-3-layout byte-level BPE (the Llama 3 split regex, ByteLevel, ignore_merges,
<|begin_of_text|> template, the Llama 3 special tokens) with `tokenizers` on the corpus, saves it, and compares on
that. The corpus is the built-in texts (Unicode scripts, CJK, emoji, combining marks, numbers, contractions,
whitespace runs, code, special tokens) plus seeded random strings plus every line of each --corpus file.
--json FILE writes a summary (texts, mismatches, tokens, the tokenizer's path) for docs/results/.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

BUILT_IN = [
    "Hello, world! It's a test; we're sure they'll pass.",
    "I'M SHOUTING, YOU'RE NOT. She'd've known.",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 0x7fff 2026-12-04",
    "Arabic-Indic ١٢٣٤٥ and fullwidth １２３",
    "你好世界。今日は良い天気ですね。안녕하세요",
    "Emoji: 🙂 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "Combining: e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937",
    "Русский текст, Ελληνικά, עברית, العربية",
    "   leading spaces", "trailing spaces   ", "tabs\t\there", "a    b     c", "\n\n\nnewlines\r\n\r\nCRLF",
    "   \n   \n", " ", "\t", "\u00a0no-break\u00a0spaces\u2003em-space",
    "def f(x):\n    return x ** 2  # comment\n",
    "if (a != b && c <= d) { s += \"q\"; }",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "text<|eot_id|>more text<|end_of_text|>",
    "<|not_a_token|> <| eot_id |>",
    "\u0000\u0001\u007f control characters",
    "URL https://example.com/a?b=c&d=e#f and mail a.b@c.de",
    "Mixed: abc123def 4five6 'quoted' \"double\" (paren) [bracket] {brace}",
]


# Random characters come from blocks assigned since Unicode 6 or earlier. Character classes (\p{L}, \p{N}) of
# code points assigned later depend on each regex engine's Unicode version (PCRE2 10.42 has Unicode 14, the
# Oniguruma in `tokenizers` a newer one), so a random code point anywhere would compare Unicode tables, not
# tokenizers. Mismatches on texts with characters unassigned in this Python's Unicode are counted apart.
STABLE_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x5D0, 0x5EA), (0x620, 0x64A),
                 (0x660, 0x669), (0x900, 0x97F), (0xE00, 0xE5B), (0x2000, 0x206F), (0x2190, 0x22FF), (0x2500, 0x257F),
                 (0x3040, 0x30FF), (0x4E00, 0x9FCC), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xFF01, 0xFF5E),
                 (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1D400, 0x1D433)]


def random_texts(n, seed):
    rng = random.Random(seed)
    atoms = ["the", " cat", "'s", "'LL", "1234", "9", " ", "   ", "\t", "\n", "\r\n", "!?", "...", "é", "e\u0301",
             "你", "好", "🙂", "👍🏽", "<|eot_id|>", "\u00a0", "١", "ß", "ﬁ"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(1, 20)):
            if rng.random() < 0.7:
                parts.append(rng.choice(atoms))
            else:
                lo, hi = rng.choice(STABLE_RANGES)
                parts.append(chr(rng.randrange(lo, hi + 1)))
        out.append("".join(parts))
    return out


def train(corpus, vocab, path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=LLAMA3_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 20, trainer=trainer)
    bot = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", bot)]),
    ])
    tok.save(path)


def run_aipe(aipe, tokenizer, texts, add_special, tmp):
    src = os.path.join(tmp, "texts.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    cmd = [aipe, "tokenize", "--tokenizer", tokenizer, "--jsonl", src] + (["--add-special-tokens"] if add_special else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"tokenizer_oracle: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    if len(rows) != len(texts):
        sys.exit(f"tokenizer_oracle: aipe returned {len(rows)} rows for {len(texts)} texts")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", help="a tokenizer.json")
    ap.add_argument("--train", action="store_true", help="train a Llama-3-layout BPE on the corpus instead")
    ap.add_argument("--vocab", type=int, default=4000, help="vocabulary size for --train")
    ap.add_argument("--corpus", action="append", default=[], help="a text file: each line is one more text")
    ap.add_argument("--random", type=int, default=2000, help="random texts added (seeded)")
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--aipe", default="build/bin/aipe")
    ap.add_argument("--json", help="write a summary here")
    ap.add_argument("--show", type=int, default=10, help="mismatches printed")
    a = ap.parse_args()
    if bool(a.tokenizer) == a.train:
        ap.error("give exactly one of --tokenizer PATH and --train")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        sys.exit("tokenizer_oracle: the Python package `tokenizers` is needed (the GPU machine's environment has it)")
    if not os.access(a.aipe, os.X_OK):
        ap.error(f"{a.aipe} is not an executable (build the 'aipe' target, or pass --aipe)")

    texts = list(BUILT_IN)
    for path in a.corpus:
        with open(path, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f if line.strip()]
    texts += random_texts(a.random, a.seed)

    with tempfile.TemporaryDirectory() as tmp:
        path = a.tokenizer
        if a.train:
            path = os.path.join(tmp, "tokenizer.json")
            train(texts, a.vocab, path)
            if a.json:  # keep the trained file beside the summary, so a mismatch can be reproduced
                keep = os.path.splitext(a.json)[0] + "-tokenizer.json"
                with open(path, encoding="utf-8") as s, open(keep, "w", encoding="utf-8") as d:
                    d.write(s.read())
        ref = Tokenizer.from_file(path)
        mismatches, unicode_gaps, tokens, shown = 0, 0, 0, 0
        for add_special in (False, True):
            rows = run_aipe(a.aipe, path, texts, add_special, tmp)
            for text, row in zip(texts, rows):
                want = ref.encode(text, add_special_tokens=add_special).ids
                got = row["ids"]
                tokens += len(want)
                ok = got == want and row["round_trip"]
                if not ok and any(unicodedata.category(c) == "Cn" for c in text):
                    unicode_gaps += 1
                elif not ok:
                    mismatches += 1
                    if shown < a.show:
                        shown += 1
                        at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
                        print(f"MISMATCH (add_special_tokens={add_special}) text={text!r}\n"
                              f"  first difference at {at}: aipe {got[at:at + 8]} tokenizers {want[at:at + 8]}\n"
                              f"  aipe decodes back: {row['round_trip']}; tokenizers decodes back: "
                              f"{ref.decode(want, skip_special_tokens=add_special) == text}")
        n = 2 * len(texts)
        print(f"tokenizer_oracle: {n - mismatches - unicode_gaps}/{n} encodings identical ({tokens} tokens) with {path}")
        if unicode_gaps:
            print(f"tokenizer_oracle: {unicode_gaps} more differ on texts with code points unassigned in Unicode "
                  f"{unicodedata.unidata_version} (regex engines' Unicode versions differ; not counted as failures)")
        if a.json:
            with open(a.json, "w", encoding="utf-8") as f:
                json.dump({"tokenizer": a.tokenizer or "trained (--train, vocab %d)" % a.vocab, "texts": n,
                           "tokens": tokens, "mismatches": mismatches,
                           "unicode_version_differences": unicode_gaps}, f, indent=1)
        return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
