#!/usr/bin/env python3
"""Independent check of aipe's gpt-oss model against Hugging Face transformers (an oracle, not a dependency).

  make DIR     writes a random-initialized gpt-oss checkpoint in the released layout: config.json (model_type
               gpt_oss, quantization_config mxfp4) and model.safetensors, BF16 attention / router / embeddings and
               MXFP4 experts (*_blocks U8 [E][rows][cols/32][16], *_scales U8 [E][rows][cols/32], quantized here).
               The real gpt-oss-20b dimensions (hidden 2880, 64 query and 8 K/V heads of 64, 32 experts top-4,
               intermediate 2880, sliding window 128 on even layers, YaRN theta 150000 factor 32 over 4096) with 2
               layers and a small vocabulary (4099). DIR/prompts.json holds prompts of awkward lengths, two longer
               than the window. Then run the GPU test that writes aipe's side:
                 AIPE_GPT_OSS_CHECKPOINT=DIR AIPE_GPT_OSS_OUT=DIR/aipe.json \
                   ./build/bin/aipe_gpu_tests --gtest_filter=GptOssGpu.OracleCheckpointGreedy
  check DIR AIPE_JSON
               builds transformers' GptOssForCausalLM from DIR/config.json, loads the non-expert tensors as stored
               and the experts through transformers' own MXFP4 conversion (integrations/mxfp4.py's
               convert_moe_packed_tensors), so both sides multiply by identical weights, and evaluates it in FP32
               (the exact model) and in BF16 (transformers' own BF16 path), eager attention (sinks, sliding window).
                 prefill: aipe's logits after each prompt against FP32: max |aipe - fp32| / max |fp32| <= REL_TOL;
                 greedy:  teacher-forced over prompt + aipe's tokens, aipe's token must be FP32's argmax wherever
                          FP32's top-2 margin exceeds MARGIN (below it, BF16 rounding may pick either).
               Prints one JSON line per prompt (with transformers' BF16 error beside aipe's); exit 1 on a failure.

Needs torch, transformers (with models/gpt_oss) and safetensors, on the GPU machine.
"""
import json
import math
import os
import sys

# BF16 tolerances. A BF16 model's logits carry a few BF16 ulps of error from the rounding of every activation:
# transformers' own BF16 path lands at 1-2% of the largest logit on this model; 4% leaves room for a different
# (not worse) summation order and fails a wrong kernel, which lands at tens of percent.
REL_TOL = 0.04
MARGIN = 0.25  # logits: a top-2 gap below this is within the BF16 noise of a 2880-wide model

CONFIG = dict(
    vocab_size=4099,
    hidden_size=2880,
    intermediate_size=2880,
    num_hidden_layers=2,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=64,
    num_local_experts=32,
    num_experts_per_tok=4,
    sliding_window=128,
    layer_types=["sliding_attention", "full_attention"],
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    # transformers 5's spelling (rope_theta inside); aipe reads it and the older rope_theta + rope_scaling alike.
    rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                     "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 4096},
    attention_bias=True,
    swiglu_limit=7.0,
    tie_word_embeddings=False,
    eos_token_id=2,
    pad_token_id=0,
)

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def quantize_mxfp4(w):
    """w [rows, cols] float (cols % 32 == 0) -> blocks [rows, cols/32, 16] uint8, scales [rows, cols/32] uint8.

    Each block of 32 gets the smallest power of two 2^e with max|x| / 2^e <= 6 (E2M1's largest value) and each
    element the nearest E2M1 value of x / 2^e (ties to the lower magnitude); element 2i goes in the low nibble of
    byte i, 2i + 1 in the high one; the scale byte is e + 127.
    """
    import torch

    rows, cols = w.shape
    g = w.float().reshape(rows, cols // 32, 32)
    amax = g.abs().amax(-1, keepdim=True).clamp(min=2.0 ** -126)
    e = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127)
    x = g / torch.exp2(e)
    lut = torch.tensor(E2M1, device=w.device)
    idx = (x.abs()[..., None] - lut).abs().argmin(-1)
    code = idx | ((x < 0).to(idx.dtype) << 3)
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).to(torch.uint8)
    scales = (e.squeeze(-1) + 127).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()


def build_reference(cfg_dict):
    from transformers import GptOssConfig, GptOssForCausalLM

    kw = {k: v for k, v in cfg_dict.items() if k in CONFIG}
    cfg = GptOssConfig(**kw)
    cfg._attn_implementation = "eager"
    return cfg, GptOssForCausalLM(cfg)


def expert_layout(p, e, rows, cols):
    """'in_out' when the experts' parameter is [E][cols][rows] (transformers' GptOssExperts: x @ W), 'out_in' for
    [E][rows][cols] (nn.Linear's). Square projections (intermediate == hidden) match both shapes: transformers'
    definition decides, so in_out is tried first."""
    if tuple(p.shape) == (e, cols, rows):
        return "in_out"
    if tuple(p.shape) == (e, rows, cols):
        return "out_in"
    raise SystemExit(f"unexpected expert parameter shape {tuple(p.shape)}")


def make(d):
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(1234)
    cfg, model = build_reference(CONFIG)
    model = model.cuda()
    # transformers' init (std 0.02, zero biases) makes every logit nearly equal; a spread of 1/sqrt(fan_in) and
    # non-zero biases and sinks give greedy choices real margins and exercise every term.
    E, H, I = CONFIG["num_local_experts"], CONFIG["hidden_size"], CONFIG["intermediate_size"]
    shapes = {"gate_up_proj": (2 * I, H), "down_proj": (H, I)}  # (out, in) of each expert projection
    with torch.no_grad():
        for name, p in model.named_parameters():
            kind = name.rsplit(".", 1)[-1]
            if kind in shapes and ".experts." in name:
                p.normal_(0.0, 1.0 / shapes[kind][1] ** 0.5)
            elif p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
            elif name.endswith("sinks"):
                p.normal_(0.0, 1.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.2)
    model = model.to(torch.bfloat16)
    tensors = {}
    for name, p in model.state_dict().items():
        kind = name.rsplit(".", 1)[-1]
        if kind in shapes and ".experts." in name:
            # The checkpoint stores [E][out][in] in blocks along `in`; rows of gate_up interleave gate and up.
            out_dim, in_dim = shapes[kind]
            w = p if expert_layout(p, E, out_dim, in_dim) == "out_in" else p.transpose(1, 2)
            w = w.contiguous()
            bl, sc = zip(*(quantize_mxfp4(w[e]) for e in range(w.shape[0])))
            tensors[name + "_blocks"] = torch.stack(bl).cpu()
            tensors[name + "_scales"] = torch.stack(sc).cpu()
        else:
            tensors[name] = p.detach().to(torch.bfloat16).contiguous().cpu()
    os.makedirs(d, exist_ok=True)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    conf = dict(CONFIG)
    conf.update(model_type="gpt_oss", architectures=["GptOssForCausalLM"], torch_dtype="bfloat16",
                quantization_config={"quant_method": "mxfp4",
                                     "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                "model.embed_tokens", "lm_head"]})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    g = torch.Generator().manual_seed(99)
    prompts = [torch.randint(3, CONFIG["vocab_size"], (n,), generator=g).tolist() for n in (1, 7, 77, 200, 300)]
    with open(os.path.join(d, "prompts.json"), "w") as f:
        json.dump({"prompts": prompts, "max_new_tokens": 16}, f)
    print(json.dumps({"made": d, "layers": CONFIG["num_hidden_layers"], "experts": CONFIG["num_local_experts"],
                      "prompts": [len(p) for p in prompts]}))


def load_reference(d, manual=False):
    """transformers' own loading of the checkpoint with its MXFP4 dequantization (Mxfp4Config(dequantize=True));
    where that path is unavailable, the same conversion function applied here, tensor by tensor."""
    import torch

    try:
        if manual:
            raise RuntimeError("the conversion function itself was asked for")
        from transformers import GptOssForCausalLM, Mxfp4Config

        m = GptOssForCausalLM.from_pretrained(d, quantization_config=Mxfp4Config(dequantize=True),
                                              dtype=torch.bfloat16, attn_implementation="eager")
        print(json.dumps({"reference_load": "from_pretrained with Mxfp4Config(dequantize=True)"}), file=sys.stderr)
        return m
    except Exception as e:  # an older transformers, or a quantizer that wants kernels it cannot fetch
        print(json.dumps({"reference_load": "convert_moe_packed_tensors", "from_pretrained_error": str(e)[:300]}),
              file=sys.stderr)
    from safetensors.torch import load_file
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    cfg_dict = json.load(open(os.path.join(d, "config.json")))
    _, model = build_reference(cfg_dict)
    st = load_file(os.path.join(d, "model.safetensors"))
    params = dict(model.named_parameters())
    state = {}
    for name, t in st.items():
        if name.endswith("_blocks"):
            base = name[: -len("_blocks")]
            w = convert_moe_packed_tensors(t.cuda(), st[base + "_scales"].cuda()).to(torch.bfloat16).cpu()
            # The checkpoint's blocks are [E][out][in / 32][16]; GptOssExperts holds [E][in][out] (x @ W).
            w = w.transpose(1, 2)
            if tuple(w.shape) != tuple(params[base].shape):
                raise SystemExit(f"{base}: dequantized {tuple(w.shape)}, the reference holds {tuple(params[base].shape)}")
            state[base] = w.contiguous()
        elif not name.endswith("_scales"):
            state[name] = t
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("inv_freq")]
    if missing or unexpected:
        raise SystemExit(f"checkpoint does not match the reference: missing {missing}, unexpected {unexpected}")
    return model


def check(d, aipe_json):
    import torch

    m16 = load_reference(d).to(torch.bfloat16).cuda().eval()
    m32 = load_reference(d).to(torch.bfloat16).float().cuda().eval()  # the BF16 weights, evaluated in FP32
    # The same checkpoint through transformers' conversion function, oriented by hand: where it disagrees with
    # from_pretrained's own loading, one of the two loads is wrong, not aipe.
    m32_manual = load_reference(d, manual=True).to(torch.bfloat16).float().cuda().eval()
    prompts = json.load(open(os.path.join(d, "prompts.json")))["prompts"]
    outs = json.load(open(aipe_json))["outputs"]
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
        pre32 = l32[len(p) - 1]
        with torch.no_grad():
            pre_manual = m32_manual(ids).logits[0].float()[len(p) - 1]
        pre_aipe = torch.tensor(o["prefill_logits"], device="cuda", dtype=torch.float32)
        scale = pre32.abs().max().item()
        rel_aipe = (pre_aipe - pre32).abs().max().item() / scale
        rel_hf16 = (l16[len(p) - 1] - pre32).abs().max().item() / scale
        rel_manual = (pre_manual - pre32).abs().max().item() / scale
        rel_aipe_manual = (pre_aipe - pre_manual).abs().max().item() / scale
        rows = l32[len(p) - 1: len(p) - 1 + len(toks)]
        top2 = rows.topk(2, dim=1)
        margin = (top2.values[:, 0] - top2.values[:, 1]).tolist()
        want = top2.indices[:, 0].tolist()
        wrong = [j for j in range(len(toks)) if margin[j] > MARGIN and toks[j] != want[j]]
        ok = rel_aipe <= REL_TOL and not wrong and math.isfinite(rel_aipe)
        bad += int(not ok)
        print(json.dumps({"prompt": i, "prompt_len": len(p), "tokens": len(toks), "ok": ok,
                          "prefill_rel_err_aipe": round(rel_aipe, 5), "prefill_rel_err_transformers_bf16": round(rel_hf16, 5),
                          "prefill_rel_err_manual_load": round(rel_manual, 5),
                          "prefill_rel_err_aipe_vs_manual_load": round(rel_aipe_manual, 5), "rel_tol": REL_TOL, "greedy_checked": sum(m > MARGIN for m in margin),
                          "greedy_wrong_at": wrong, "margin": MARGIN,
                          "argmax_matches_fp32": sum(int(t == w) for t, w in zip(toks, want))}))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
