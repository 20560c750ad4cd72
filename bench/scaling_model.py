#!/usr/bin/env python3
"""Step time of `qkv train` data-parallel over N machines: a model fitted to measured points.

    bench/scaling_model.py                 # the tables of docs/scaling.md
    bench/scaling_model.py --exposed-ms 224 --rate-gbit 1   # refit eta to another measurement

Each machine runs one micro-batch per step (compute C seconds); the backward finishes the
gradient buckets one after another, evenly over its last `hide` share of C; a reducer thread
sums them in order, each with a ring allreduce (Open MPI's libnbc ring, which qkv selects):
2(N-1) messages of latency alpha and 2(N-1)/N of the bucket's bytes over a link of rate
eta * rate, plus a small ring allreduce of the bucket's exponents first (2(N-1) more latencies).
What the step waits after the backward is the exposed communication; the step is C plus it.
"""
import argparse

PARAMS = 10.75e6        # big config (6 layers, 384 channels, block 256)
BYTES = 8               # int64 fixed-point sums (ExactGradSum)
BUCKETS = 9             # train.bucket_mb = 8: 9 buckets of whole tensors for this model
HIDE = 2 / 3            # the backward's share of a step: the time buckets can hide behind


def exposed(n, compute_s, rate_bps, eta, alpha_s, buckets=BUCKETS):
    """Seconds the step waits for the reduction after its backward."""
    if n == 1:
        return 0.0
    backward = HIDE * compute_s
    bucket_bytes = PARAMS * BYTES / buckets
    per_bucket = (2 * (n - 1) / n * bucket_bytes * 8 / (eta * rate_bps)
                  + 2 * 2 * (n - 1) * alpha_s)
    end = 0.0
    for k in range(buckets):
        ready = backward * (k + 1) / buckets  # the last is ready when the backward ends
        end = max(end, ready) + per_bucket
    return end - backward


def fit_eta(exposed_s, n, compute_s, rate_bps, alpha_s):
    lo, hi = 0.01, 1.0
    for _ in range(60):  # exposed falls as eta rises
        mid = (lo + hi) / 2
        if exposed(n, compute_s, rate_bps, mid, alpha_s) > exposed_s:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compute-s", type=float, default=1.62,
                    help="one micro-batch of 64 on one 2-core machine (measured: 1 x 2 threads)")
    ap.add_argument("--exposed-ms", type=float, default=224,
                    help="measured exposed reduction, 2 ranks x 1 thread at --rate-gbit")
    ap.add_argument("--measured-compute-s", type=float, default=3.64,
                    help="that run's step time minus its exposed reduction")
    ap.add_argument("--rate-gbit", type=float, default=1.0)
    ap.add_argument("--eta", type=float, help="use this share of the link rate instead of fitting")
    ap.add_argument("--buckets", type=int, default=BUCKETS,
                    help="buckets per step (fewer: larger train.bucket_mb)")
    args = ap.parse_args()

    eta = args.eta or fit_eta(args.exposed_ms / 1e3, 2, args.measured_compute_s,
                              args.rate_gbit * 1e9, 5e-5)
    print(f"eta = {eta:.2f} of the link rate reaches the ring" + (
        "" if args.eta else f" (fitted to {args.exposed_ms:.0f} ms exposed at 2 ranks, "
        f"{args.rate_gbit:g} Gbit/s)") + f"; {args.buckets} buckets\n")
    c = args.compute_s
    print("| machines | link | latency | step (s) | exposed (ms) | efficiency |")
    print("|---|---|---|---|---|---|")
    for rate in (10, 1):
        for alpha_ms in (0.1, 1.0):
            for n in (1, 8, 16, 32, 64):
                e = exposed(n, c, rate * 1e9, eta, alpha_ms / 1e3, args.buckets)
                print(f"| {n} | {rate} Gbit/s | {alpha_ms:g} ms | {c + e:.2f} | {e * 1e3:.0f} "
                      f"| {c / (c + e):.0%} |")


if __name__ == "__main__":
    main()
