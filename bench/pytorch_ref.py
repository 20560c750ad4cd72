#!/usr/bin/python3
"""The PyTorch reference for bench/compare.sh: nanoGPT's model and training loop, written afresh,
timed the way bench_train times qkv (median ms/iter after warm-up, peak RSS).

Same model as nanoGPT's model.py (bench/ref_model.py, which also holds the modern recipe's
options: rotary positions, RMSNorm, QK-norm, ReLU^2 and SwiGLU, zero-initialised projections).
Same loop as nanoGPT's train.py: random windows of the first 90% of the text, AdamW with decay on
the >= 2-D tensors only, warmup + cosine lr, grad clipping, zero_grad(set_to_none=True); or
Muon and a warmup-stable-decay schedule (bench/ref_optim.py).
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

from ref_model import GPT
from ref_optim import make_optimizers, set_lr


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
    ap.add_argument("--to-loss", type=float, default=0.0,
                    help="train until the val loss (--eval-batches batches, every --eval-every "
                         "steps) reaches this, the training time passes --budget-s, or max_iters "
                         "ends (bench/time_to_loss.sh)")
    ap.add_argument("--eval-every", type=int, default=50,
                    help="steps between --to-loss evaluations")
    ap.add_argument("--eval-batches", type=int, default=200,
                    help="batches per --to-loss evaluation")
    ap.add_argument("--budget-s", type=float, default=2400.0,
                    help="--to-loss gives up after this much training time (evaluations are not "
                         "counted)")
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
    optimizers = make_optimizers(model, o, args.autocast == "bf16")

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
    def split_loss(split, batches):
        model.eval()
        total = 0.0
        for _ in range(batches):
            with autocast():
                total += model(*get_batch(split)).item()
        model.train()
        return total / batches

    def evaluate(it, batches):
        losses = {name: split_loss(split, batches)
                  for name, split in (("train", train), ("val", val))}
        print(f"EVAL iter={it} batches={batches} train_loss={losses['train']:.4f} "
              f"val_loss={losses['val']:.4f}", flush=True)

    X, Y = get_batch()

    def train_step(it):
        """nanoGPT's iteration it; returns its loss."""
        nonlocal X, Y
        set_lr(optimizers, it, o, s)
        with autocast():
            loss = model(X, Y)
        X, Y = get_batch()  # nanoGPT fetches the next batch while the step is in flight
        loss.backward()
        if o["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["grad_clip"])
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss

    model.train()
    if args.to_loss > 0:
        # Training time only: each step is timed on its own, the evaluations are not.
        seconds, it = 0.0, 0
        while True:
            if it % args.eval_every == 0 or it == t["max_iters"]:
                loss = split_loss(val, args.eval_batches)
                print(f"TTL iter={it} seconds={seconds:.3f} tokens={it * B * T} "
                      f"val_loss={loss:.4f}", flush=True)
                if loss <= args.to_loss or seconds > args.budget_s or it == t["max_iters"]:
                    return
            t0 = time.perf_counter()
            train_step(it)
            seconds += time.perf_counter() - t0
            it += 1
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
