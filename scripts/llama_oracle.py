#!/usr/bin/env python3
"""Independent check of aipe's Llama engine against Hugging Face transformers (an oracle, not a dependency).

  make DIR [VARIANT]
               writes a small random Llama checkpoint (config.json + model.safetensors, BF16) with transformers'
               own initialisation, of shapes the kernels take but not multiples of their tiles (vocab 4099,
               intermediate 1416, GQA 8/2 heads of 64), and DIR/prompts.json (a few prompts of awkward lengths).
  check DIR AIPE_JSON
               reads what `aipe generate --json` wrote for DIR's prompts and teacher-forces transformers over
               prompt + aipe's tokens, in FP32 on the BF16 weights (the exact model) and in BF16 (transformers' own
               fast path). For each token aipe chose greedily, its margin is how far its logit lies below the
               top logit of the FP32 evaluation; transformers' BF16 choices get the same measure. aipe passes when
               its worst margin is at most transformers' BF16 worst margin + TOL: no further from the exact model
               than the reference implementation's own BF16 path (a wrong model lands far from the top). Exit 1
               otherwise.

Needs torch and transformers (on the GPU machine). Prints one JSON line per check with the worst margin.
"""
import json
import os
import sys

TOL = 0.15  # logits of a BF16 model of this size: a few BF16 ulps of the top logit


VARIANTS = {
    # name: overrides of the base config (each isolates one feature when a check fails)
    "base": {},
    "plain_rope": {"rope_scaling": None},
    "mha": {"num_key_value_heads": 8},
    "d128": {"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 128},
}


def make(d, variant="base"):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    kw = dict(
        vocab_size=4099,
        hidden_size=512,
        intermediate_size=1416,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 256},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="bfloat16",
    )
    kw.update(VARIANTS[variant])
    cfg = LlamaConfig(**kw)
    model = LlamaForCausalLM(cfg)
    # transformers' default init (std 0.02) makes every logit nearly equal; a larger spread gives the greedy
    # choice real margins, so that a wrong kernel shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
    model = model.to(torch.bfloat16)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(99)
    prompts = [torch.randint(3, cfg.vocab_size, (n,), generator=g).tolist() for n in (1, 7, 77, 300)]
    with open(os.path.join(d, "prompts.json"), "w") as f:
        json.dump({"prompts": prompts}, f)
    print(json.dumps({"made": d, "variant": variant, "prompts": [len(p) for p in prompts]}))


def check(d, aipe_json):
    import torch
    from transformers import LlamaForCausalLM

    # The exact model is the BF16 weights evaluated in FP32; transformers' own BF16 path is one noisy estimate of it,
    # aipe's another. Margins: how far below the top logit (of the FP32 evaluation) the chosen token's logit is.
    m32 = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.bfloat16).float().cuda().eval()
    m16 = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.bfloat16).cuda().eval()
    prompts = json.load(open(os.path.join(d, "prompts.json")))["prompts"]
    got = json.load(open(aipe_json))
    outs = got["outputs"]
    if len(outs) != len(prompts):
        print(json.dumps({"error": f"{len(outs)} outputs for {len(prompts)} prompts"}))
        return 1
    bad = 0
    for i, (p, o) in enumerate(zip(prompts, outs)):
        toks = o["tokens"]
        ids = torch.tensor([p + toks], device="cuda")
        with torch.no_grad():
            l32 = m32(ids).logits[0].float()
            l16 = m16(ids).logits[0].float()
        rows = l32[len(p) - 1: len(p) - 1 + len(toks)]
        top = rows.max(dim=1).values
        t = torch.tensor(toks, device="cuda")
        aipe_m = (top - rows.gather(1, t[:, None])[:, 0]).tolist()
        hf16_choice = l16[len(p) - 1: len(p) - 1 + len(toks)].argmax(dim=1)
        hf16_m = (top - rows.gather(1, hf16_choice[:, None])[:, 0]).tolist()
        worst_aipe, worst_hf16 = max(aipe_m), max(hf16_m)
        # aipe must be as close to the exact model as transformers' own BF16 evaluation, within TOL.
        ok = worst_aipe <= worst_hf16 + TOL
        bad += int(not ok)
        exact = int((rows.argmax(dim=1) == t).sum().item())
        print(json.dumps({"prompt": i, "prompt_len": len(p), "tokens": len(toks), "argmax_matches_fp32": exact,
                          "worst_margin_aipe": round(worst_aipe, 4), "worst_margin_transformers_bf16": round(worst_hf16, 4),
                          "ok": ok, "margins_aipe": [round(x, 3) for x in aipe_m[:12]],
                          "margins_transformers_bf16": [round(x, 3) for x in hf16_m[:12]]}))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "base")
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
