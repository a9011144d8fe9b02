#!/usr/bin/env python3
"""Writes tiny-tokenizer.json beside this file: a hand-made byte-level BPE tokenizer in the Llama 3 layout
(Split with the Llama 3 regex + ByteLevel without its own regex, ByteLevel decoder, TemplateProcessing that puts
<|begin_of_text|> first, ignore_merges), small enough to reason about in tests/llm/tokenizer_test.cpp.

Ids: byte b is token b (its GPT-2 byte-alphabet character), merged tokens follow from 256 in merge order, then
one vocabulary entry no merge reaches, then the added tokens (which `tokenizers` numbers right after the
vocabulary). Run once; the JSON is checked in."""
import json, os

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_alphabet():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


B = byte_alphabet()


def mapped(text):
    return "".join(B[b] for b in text.encode("utf-8"))


# Merges as (left, right) in plain text; each side and the result become byte-alphabet strings.
MERGES = [
    ("h", "e"), ("l", "l"), (" ", "t"), (" t", "he"), ("l", "o"), ("he", "ll"), ("hell", "o"),
    (" ", "w"), ("o", "r"), (" w", "or"), ("l", "d"), (" wor", "ld"), ("'", "s"),
    (" ", " "), ("  ", "  "), ("1", "2"), ("12", "3"), ("\n", "\n"),
]
# 你 is E4 BD A0, 好 is E5 A5 BD: their bytes merge pairwise into the whole characters.
CJK = [("\xe4", "\xbd"), ("\xe4\xbd", "\xa0"), ("\xe5", "\xa5"), ("\xe5\xa5", "\xbd")]


def main():
    vocab = {B[b]: b for b in range(256)}
    merges = []
    for a, b in MERGES:
        ma, mb = mapped(a), mapped(b)
        merges.append(f"{ma} {mb}")
        vocab.setdefault(ma + mb, len(vocab))
    for a, b in CJK:  # byte strings given as latin-1 text
        ma = "".join(B[ord(c)] for c in a)
        mb = "".join(B[ord(c)] for c in b)
        merges.append(f"{ma} {mb}")
        vocab.setdefault(ma + mb, len(vocab))
    # In the vocabulary but unreachable through merges (no " hello" merge): only ignore_merges finds it.
    vocab[mapped(" hello")] = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    first = len(vocab)
    added = [dict(id=first + i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False,
                  special=True) for i, s in enumerate(specials)]
    added.append(dict(id=first + len(specials), content="<tool>", single_word=False, lstrip=False, rstrip=False, normalized=False,
                      special=False))
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [first],
                                                      "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny-tokenizer.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
