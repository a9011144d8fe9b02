#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at the shapes of ch18/attention_forward: an independent cross-check
of the ladder's cudnn rung and of its TFLOP/s, not a dependency of aipe.

For each shape and each SDPA backend (FlashAttention-2 and cuDNN), BF16 Q, K, V in PyTorch's [b][h][s][d]
layout (a transposed view of aipe's [b][s][h][d], which is what both backends take), uniform in [-1, 1); GQA by
enable_gqa (K and V expanded to every query head if the backend refuses it, noted in the record). The time is
the median of CUDA-event timed launches after a warm-up, the L2 flushed before each; the FLOPs are the
ladder's: 4 b h d times the visible (q, kv) pairs, s (s + 1) / 2 per head for causal (seq_q == seq_kv here,
where PyTorch's top-left causal alignment and aipe's bottom-right one agree). Prints one JSON object.

  /opt/torch/.venv/bin/python scripts/attention_torch_oracle.py [--iters N]
"""
import argparse
import json
import sys

SHAPES = [  # (batch, heads, kv_heads, seq, d, causal): the ladder's default and its variations
    (4, 32, 8, 4096, 128, True),
    (4, 32, 8, 4096, 128, False),
    (4, 32, 8, 4096, 64, True),
    (1, 32, 8, 16384, 128, True),
]


def visible_pairs(seq, causal):
    return seq * (seq + 1) // 2 if causal else seq * seq


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    args = ap.parse_args()
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"PyTorch not importable: {e}"}))
        return 3
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device visible to PyTorch"}))
        return 3
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    flush = torch.empty(int(props.L2_cache_size * 3 // 4) if hasattr(props, "L2_cache_size") else 256 << 20,
                        dtype=torch.int32, device=dev)
    out = {"gpu": props.name, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "runs": []}
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for (b, h, hkv, s, d, causal) in SHAPES:
        g = torch.Generator(device=dev).manual_seed(1)
        q = (torch.rand(b, s, h, d, device=dev, generator=g) * 2 - 1).to(torch.bfloat16).transpose(1, 2)
        k = (torch.rand(b, s, hkv, d, device=dev, generator=g) * 2 - 1).to(torch.bfloat16).transpose(1, 2)
        v = (torch.rand(b, s, hkv, d, device=dev, generator=g) * 2 - 1).to(torch.bfloat16).transpose(1, 2)
        flops = 4.0 * b * h * d * visible_pairs(s, causal)
        for name, backend in backends.items():
            rec = {"backend": name, "batch": b, "heads": h, "kv_heads": hkv, "seq": s, "d": d,
                   "mask": "causal" if causal else "none"}
            try:
                with sdpa_kernel([backend]):
                    kk, vv, gqa = k, v, "enable_gqa"
                    def call():
                        return F.scaled_dot_product_attention(q, kk, vv, is_causal=causal, enable_gqa=(hkv != h))
                    try:
                        call()
                    except RuntimeError:
                        kk = k.repeat_interleave(h // hkv, dim=1)
                        vv = v.repeat_interleave(h // hkv, dim=1)
                        gqa = "expanded"
                        def call():  # noqa: F811 (the expanded form)
                            return F.scaled_dot_product_attention(q, kk, vv, is_causal=causal)
                        call()
                    for _ in range(3):
                        call()
                    times = []
                    for _ in range(args.iters):
                        flush.zero_()
                        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        e0.record()
                        call()
                        e1.record()
                        e1.synchronize()
                        times.append(e0.elapsed_time(e1))
                times.sort()
                med = times[len(times) // 2]
                rec.update({"gqa": gqa if hkv != h else "mha", "median_ms": med, "min_ms": times[0],
                            "tflops": flops / (med * 1e-3) / 1e12})
            except Exception as e:  # a backend that does not take the shape: say so, keep going
                rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            out["runs"].append(rec)
        del q, k, v
        torch.cuda.empty_cache()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
