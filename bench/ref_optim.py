"""The optimizers and learning-rate schedules of bench/pytorch_ref.py, named
as keys of [optim] and [schedule] (unset: nanoGPT's), written afresh.

optim.kind = "adamw": nanoGPT's AdamW, decay on the >= 2-D tensors only.
optim.kind = "muon": Muon for the blocks' 2-D weights (attention and MLP matrices); AdamW, at
optim.lr, for the rest (embeddings and the tied head, norms, biases). Muon's step for a weight W
with gradient G:
    M = momentum * M + (1 - momentum) * G
    U = (1 - momentum) * G + momentum * M            (Nesterov)
    O = newton_schulz(U), five quintic iterations     (in bf16 where the run is bf16)
    W = W - muon_lr * lr_scale * sqrt(max(1, rows / cols)) * O
with lr_scale the schedule's factor (lr_at / optim.lr), no weight decay, and c_attn's weight
orthogonalised as its three [C, C] parts (q, k, v) rather than as one [3C, C] matrix.

schedule.decay = "cosine": nanoGPT's warmup then cosine to min_lr at lr_decay_iters.
schedule.decay = "wsd": warmup, constant at lr, then linear to min_lr over the last
decay_fraction of lr_decay_iters.
"""
import math

import torch

# The quintic's coefficients: the steepest slope at zero that still keeps every singular value
# of the result within about [0.7, 1.2] after five steps (Jordan et al., "Muon", 2024).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def lr_at(it, o, s):
    """The learning rate of iteration it."""
    warmup, end = s["warmup_iters"], s["lr_decay_iters"]
    if it < warmup:
        return o["lr"] * (it + 1) / (warmup + 1)
    if it > end:
        return o["min_lr"]
    if s.get("decay", "cosine") == "wsd":
        start = end - s.get("decay_fraction", 0.2) * end
        if it < start:
            return o["lr"]
        return o["lr"] + (it - start) / (end - start) * (o["min_lr"] - o["lr"])
    ratio = (it - warmup) / (end - warmup)
    return o["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (o["lr"] - o["min_lr"])


def newton_schulz(G, dtype):
    """An approximately orthogonal matrix with G's singular vectors (U V^T of G = U S V^T)."""
    X = G.to(dtype)
    tall = X.size(0) > X.size(1)
    if tall:
        X = X.T
    X = X / (X.norm() + 1e-7)
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return (X.T if tall else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum, dtype):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.dtype = dtype

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                M = self.state[p].setdefault("momentum", torch.zeros_like(p))
                M.mul_(beta).add_(p.grad, alpha=1 - beta)
                U = p.grad.mul(1 - beta).add_(M, alpha=beta)
                parts = U.split(U.size(1), dim=0) if group.get("split_qkv") else (U,)
                O = torch.cat([newton_schulz(part, self.dtype) for part in parts])
                rows, cols = parts[0].shape
                p.add_(O, alpha=-group["lr"] * math.sqrt(max(1.0, rows / cols)))


def make_optimizers(model, o, bf16):
    """The optimizers of optim.kind, each param group with its base lr in "base_lr"."""
    if o.get("kind", "adamw") == "adamw":
        adam_params = list(model.parameters())
        muon_params = []
    else:
        muon_params = [(n, p) for n, p in model.named_parameters() if p.dim() == 2
                       and n.startswith("h.")]
        ids = {id(p) for _, p in muon_params}
        adam_params = [p for p in model.parameters() if id(p) not in ids]
    decay = [p for p in adam_params if p.dim() >= 2]
    no_decay = [p for p in adam_params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o["weight_decay"], "base_lr": o["lr"]}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "base_lr": o["lr"]})
    optimizers = [torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]))]
    if muon_params:
        lr, momentum = o.get("muon_lr", 0.02), o.get("muon_momentum", 0.95)
        qkv = [p for n, p in muon_params if n.endswith("c_attn.weight")]
        rest = [p for n, p in muon_params if not n.endswith("c_attn.weight")]
        muon_groups = [{"params": rest, "base_lr": lr},
                       {"params": qkv, "base_lr": lr, "split_qkv": True}]
        optimizers.append(Muon(muon_groups, lr, momentum,
                               torch.bfloat16 if bf16 else torch.float32))
    return optimizers


def set_lr(optimizers, it, o, s):
    """Every group at its base lr times the schedule's factor for iteration it (AdamW's at the
    schedule's lr itself, as nanoGPT sets it)."""
    lr = lr_at(it, o, s)
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = lr if g["base_lr"] == o["lr"] else g["base_lr"] * lr / o["lr"]
