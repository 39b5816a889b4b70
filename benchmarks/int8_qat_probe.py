"""Can a short quantisation-aware fine-tune close the int8 parity gap? A probe, not a product feature.

ONNX Runtime's dynamic int8 (what `harmscan export` builds) quantises each MatMul input per tensor to uint8
(scale from the tensor's own min / max, zero point included) and each weight per output channel to
symmetric int8. This script reproduces exactly that in PyTorch with fake quantisation (straight-through
gradients) on every encoder Linear, checks how far the fake-quantised model moves from the fp32 one, then
fine-tunes for --steps steps on the recipe's train texts with a consistency loss:

    loss = MSE(logits_fp32, teacher) + 100 * MSE(sigmoid(logits_int8), sigmoid(logits_fp32))
           + MSE(logits_int8, logits_fp32)

(teacher = the model before the probe, frozen, so the fp32 model stays where it was), and reports the gap
again. The gate needs max |Δp| <= 0.02. Nothing is written unless -o is given.

    OMP_NUM_THREADS=2 python benchmarks/int8_qat_probe.py artifacts/model --steps 50
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--dataset", type=Path, help="dataset folder (default: the one in harmscan_training.json)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--check-texts", type=int, default=600, help="validation texts for the before/after gap")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, help="save the fine-tuned model here")
    args = p.parse_args(argv)

    import datasets
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    from harmscan.training.modeling import load_classifier

    torch.set_num_threads(args.threads)
    info = json.loads((args.model_dir / "harmscan_training.json").read_text())
    data_dir = args.dataset or Path(info["dataset"])
    if not data_dir.is_dir():
        sys.exit(f"no dataset at {data_dir}: pass --dataset")
    max_length = int(info.get("max_length") or 128)
    quant = {"on": False}

    def fake_quant_activation(x: Any) -> Any:  # DynamicQuantizeLinear: uint8, range always includes 0
        lo, hi = x.detach().min().clamp(max=0.0), x.detach().max().clamp(min=0.0)
        scale = (hi - lo) / 255.0
        if float(scale) == 0.0:
            return x
        zero = torch.round(-lo / scale).clamp(0, 255)
        q = (torch.round(x / scale) + zero).clamp(0, 255)
        return x + ((q - zero) * scale - x).detach()

    def fake_quant_weight(w: Any) -> Any:  # QInt8 symmetric per output channel: [-127, 127]
        scale = (w.detach().abs().amax(dim=1, keepdim=True) / 127.0).clamp_min(1e-12)
        return w + (torch.round(w / scale).clamp(-127, 127) * scale - w).detach()

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    teacher = load_classifier(args.model_dir)
    student = load_classifier(args.model_dir)
    for name, module in student.named_modules():
        if isinstance(module, torch.nn.Linear) and ".encoder." in f".{name}.":
            def forward(x: Any, m: Any = module) -> Any:
                if quant["on"]:
                    return F.linear(fake_quant_activation(x), fake_quant_weight(m.weight), m.bias)
                return F.linear(x, m.weight, m.bias)
            module.forward = forward

    ds = datasets.load_from_disk(str(data_dir))
    train = [str(t) for t in ds["train"]["text"]]
    random.Random(0).shuffle(train)
    check = [str(t) for t in ds["validation"]["text"]][: args.check_texts]

    def encode(texts: list[str]) -> Any:
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")

    def gap() -> tuple[float, float]:
        student.eval()
        order = sorted(range(len(check)), key=lambda i: len(check[i]))
        diffs = []
        with torch.inference_mode():
            for i in range(0, len(order), 32):
                batch = encode([check[j] for j in order[i : i + 32]])
                quant["on"] = False
                fp = torch.sigmoid(student(**batch).logits)
                quant["on"] = True
                q = torch.sigmoid(student(**batch).logits)
                quant["on"] = False
                diffs.append((fp - q).abs().numpy())
        d = np.concatenate(diffs)
        return float(d.max()), float(np.quantile(d, 0.99))

    before = gap()
    print(f"before: fake-int8 vs fp32 on {len(check)} validation texts: max |Δp| {before[0]:.4f}, p99 {before[1]:.4f}")
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    started, bs, losses = time.perf_counter(), args.batch_size, []
    for step in range(args.steps):
        student.train()
        start = (step * bs) % max(1, len(train) - bs)
        batch = encode(train[start : start + bs])
        with torch.no_grad():
            target = teacher(**batch).logits
        quant["on"] = False
        fp = student(**batch).logits
        quant["on"] = True
        q = student(**batch).logits
        quant["on"] = False
        loss = (F.mse_loss(fp, target) + 100 * F.mse_loss(torch.sigmoid(q), torch.sigmoid(fp))
                + F.mse_loss(q, fp))
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] = args.lr * (1 - (step + 1) / args.steps)
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            window = losses[-10:]
            print(f"step {step + 1}/{args.steps}: loss {sum(window) / len(window):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    after = gap()
    print(f"after {args.steps} steps ({time.perf_counter() - started:.0f} s, {args.threads} threads): "
          f"max |Δp| {after[0]:.4f}, p99 {after[1]:.4f} (gate: max <= 0.02)")
    if args.output:
        student.save_pretrained(args.output)
        tokenizer.save_pretrained(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
