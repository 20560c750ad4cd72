#!/usr/bin/python3
"""The PyTorch reference for bench/compare.sh: nanoGPT's model and training loop, written afresh,
timed the way bench_train times qkv (median ms/iter after warm-up, peak RSS).

Same model as nanoGPT's model.py (and qkv's MODULES_SPEC): pre-LN GPT, LayerNorm with optional
bias, exact-erf GELU, learned positions, lm_head tied to the token embedding, init N(0, 0.02)
with the residual projections at 0.02/sqrt(2L). Same loop as nanoGPT's train.py: random windows
of the first 90% of the text, AdamW with decay on the >= 2-D tensors only, warmup + cosine lr,
grad clipping, zero_grad(set_to_none=True).
--autocast bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), as
nanoGPT's ctx would on a CPU if it did not turn autocast off there (matmuls in bf16 through oneDNN;
weights, grads and AdamW in fp32; backward outside the context, as nanoGPT's).
An allocator setting makes it faster than nanoGPT's train.py without touching the model or the
loop: --malloc keep (the default) keeps freed memory in glibc malloc's heap (keep_freed_memory).
With glibc's defaults the big config's steps page-fault 1-2 million times each; --malloc default
runs that way, as train.py does.

Runs on Debian's python3-torch (1.13, which has no scaled_dot_product_attention; attention is
nanoGPT's explicit masked softmax path). Thread settings come from the caller: the environment
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE, read when the libraries load) and
--torch-threads (torch.set_num_threads; 0 leaves torch's default). bf16 matmuls run in oneDNN on
torch's intra-op threads, not in OpenBLAS.
With --train it trains the config's max_iters instead of timing steps, and prints nanoGPT's
evaluations (bench/quality.sh compares them with qkv's over several seeds).

    OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 \\
        bench/pytorch_ref.py configs/shakespeare_char.toml ../shared/data/tinyshakespeare.txt
"""
import argparse
import contextlib
import ctypes
import math
import os
import resource
import statistics
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch 1.13's nn.LayerNorm cannot drop only the bias)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, T = cfg["n_embd"], cfg["block_size"]
        self.n_head = cfg["n_head"]
        self.c_attn = nn.Linear(C, 3 * C, bias=cfg["bias"])
        self.c_proj = nn.Linear(C, C, bias=cfg["bias"])
        self.attn_dropout = nn.Dropout(cfg["dropout"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg["n_embd"]
        self.c_fc = nn.Linear(C, 4 * C, bias=cfg["bias"])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * C, C, bias=cfg["bias"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab_size"], C)
        self.wpe = nn.Embedding(cfg["block_size"], C)
        self.drop = nn.Dropout(cfg["dropout"])
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = LayerNorm(C, cfg["bias"])
        self.lm_head = nn.Linear(C, cfg["vocab_size"], bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg["n_layer"]))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.size(1)
        pos = torch.arange(0, T, dtype=torch.long)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def non_embedding_params(self):
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()


def blas_kernel():
    """The kernel OpenBLAS loaded (OPENBLAS_CORETYPE's, or its own pick for this CPU)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")  # torch's BLAS, already loaded
    except OSError:
        return "unknown"
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def keep_freed_memory():
    """glibc malloc (PyTorch's CPU allocator is malloc): every block from the heap, none mmap()ed
    on its own, and the heap never trimmed, so the activations a step frees are reused by the next
    step instead of being unmapped and faulted in again. With glibc's defaults each tensor over
    32 MB is a fresh mmap(), and a freed heap top goes back to the system: on the big config that
    costs a third of a step (and peak RSS grows by ~10% without it). True if glibc took both."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1


def lr_at(it, o, s):
    if it < s["warmup_iters"]:
        return o["lr"] * (it + 1) / (s["warmup_iters"] + 1)
    if it > s["lr_decay_iters"]:
        return o["min_lr"]
    ratio = (it - s["warmup_iters"]) / (s["lr_decay_iters"] - s["warmup_iters"])
    return o["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (o["lr"] - o["min_lr"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("corpus")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads; 0 = default")
    ap.add_argument("--autocast", choices=("off", "bf16"), default="off",
                    help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--malloc", choices=("keep", "default"), default="keep",
                    help="keep: freed memory stays in malloc's heap (keep_freed_memory); "
                         "default: glibc's defaults, as nanoGPT's train.py runs")
    ap.add_argument("--batch-size", type=int, default=0, help="override train.batch_size")
    ap.add_argument("--block-size", type=int, default=0, help="override model.block_size")
    ap.add_argument("--train", action="store_true",
                    help="train the config's max_iters, evaluating as nanoGPT does (quality runs)")
    ap.add_argument("--seed", type=int, default=None, help="override train.seed")
    ap.add_argument("--final-eval-iters", type=int, default=200,
                    help="batches per split for the extra evaluation after the last step (--train)")
    args = ap.parse_args()
    malloc = args.malloc
    if malloc == "keep" and not keep_freed_memory():
        malloc = "default (mallopt failed)"

    with open(args.config, "rb") as f:
        conf = tomllib.load(f)
    m, o, s, t = conf["model"], conf["optim"], conf["schedule"], conf["train"]
    if args.block_size:
        m["block_size"] = args.block_size
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    torch.manual_seed(t["seed"] if args.seed is None else args.seed)

    text = open(args.corpus, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = np.array([stoi[ch] for ch in text], dtype=np.int64)
    n_train = int(len(data) * (1 - conf["data"].get("val_fraction", 0.1)))
    train, val = torch.from_numpy(data[:n_train]), torch.from_numpy(data[n_train:])

    cfg = dict(m, vocab_size=len(chars))
    model = GPT(cfg)
    B, T = args.batch_size or t["batch_size"], m["block_size"]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o["weight_decay"]}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]))

    offsets = torch.arange(T + 1)

    def get_batch(split=train):
        """nanoGPT's B random windows (same draw), gathered in one indexing op."""
        ix = torch.randint(len(split) - T, (B,))
        w = split[ix[:, None] + offsets]
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    def autocast():
        if args.autocast == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def evaluate(it, batches):
        model.eval()
        losses = {}
        for name, split in (("train", train), ("val", val)):
            total = 0.0
            for _ in range(batches):
                with autocast():
                    total += model(*get_batch(split)).item()
            losses[name] = total / batches
        model.train()
        print(f"EVAL iter={it} batches={batches} train_loss={losses['train']:.4f} "
              f"val_loss={losses['val']:.4f}", flush=True)

    X, Y = get_batch()

    def train_step(it):
        """nanoGPT's iteration it; returns its loss."""
        nonlocal X, Y
        for g in opt.param_groups:
            g["lr"] = lr_at(it, o, s)
        with autocast():
            loss = model(X, Y)
        X, Y = get_batch()  # nanoGPT fetches the next batch while the step is in flight
        loss.backward()
        if o["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    model.train()
    if args.train:
        # nanoGPT's loop: evaluate before the step of every eval_interval-th iteration, and
        # after the last step (iteration max_iters).
        for it in range(t["max_iters"] + 1):
            if it % t["eval_interval"] == 0:
                evaluate(it, t["eval_iters"])
            if it == t["max_iters"]:
                break
            train_step(it)
        evaluate(t["max_iters"], args.final_eval_iters)
        return

    N, L, H, C = model.non_embedding_params(), m["n_layer"], m["n_head"], m["n_embd"]
    flops = (6 * N + 12 * L * H * (C // H) * T) * B * T
    ms = []
    for it in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        loss = train_step(it)
        elapsed = (time.perf_counter() - t0) * 1e3
        if it >= args.warmup:
            ms.append(elapsed)

    med = statistics.median(ms)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    env = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "OPENBLAS_CORETYPE")}
    print(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, autocast "
          f"{args.autocast}, malloc {malloc}, OpenBLAS kernel {blas_kernel()}, {env}")
    print(f"config {args.config}: L{L} H{H} C{C} T{T} B{B}, {N / 1e6:.3f}M non-embedding "
          f"parameters, {flops * 1e-9:.2f} GFLOP/iter; loss at the last step {loss.item():.4f}")
    print(f"median {med:.2f} ms/iter (min {min(ms):.2f}, max {max(ms):.2f}) over {args.iters} "
          f"after {args.warmup} warm-up; {flops / med * 1e-6:.1f} GFLOP/s; peak RSS {rss:.1f} MB")
    print(f"RESULT torch ms_per_iter={med:.3f} rss_mb={rss:.1f} gflops={flops / med * 1e-6:.2f} "
          f"autocast={args.autocast} malloc={malloc.split()[0]} blas={blas_kernel()}")


if __name__ == "__main__":
    main()
