#!/usr/bin/env python3
"""A scaling model of latent's data-parallel training, from bench/distributed.sh's measurements.

Step time of N ranks (one thread each) training with a global batch B, per-rank batch b = B / N:

    compute(b) = c * b                      c: seconds per sample on one thread (measured)
    comm(N)    = 2 (N - 1) / N * S * (1 / BW + 1 / R) + 2 (N - 1) * alpha
                                            ring all-reduce of S bytes (Gloo's algorithm for CPU
                                            tensors): each rank sends and receives 2 (N-1)/N * S
                                            bytes in 2 (N-1) messages. BW: the link's bandwidth;
                                            R: the CPU's rate for Gloo's copies and sums
                                            (measured on loopback, where the link costs nothing
                                            beyond them); alpha: one message's latency.
    step(N)    = compute(b) + comm(N)       no overlap (the fused MLP step; on CPUs whose cores are
                                            all computing, Gloo's threads take time from compute)
    step(N)   >= max(compute(b), comm(N))   full overlap (autograd's buckets with a spare core)

Communication stops hiding once comm(N) > compute(b): the per-rank batch must stay above
b* = comm(N) / c. Networks (assumed, not measured here): 10 GbE: BW = 1.17 GB/s (9.4 Gb/s of TCP
goodput), alpha = 30 us; 100 GbE: BW = 6 GB/s (one TCP stream per peer, as Gloo opens, rarely
passes half the line rate), alpha = 15 us.

    bench/distributed.sh | tee /tmp/dist.txt; bench/scaling_model.py /tmp/dist.txt
"""
import json
import sys

NETWORKS = {"10 GbE": (1.17e9, 30e-6), "100 GbE": (6e9, 15e-6)}
RANKS = [2, 4, 8, 16, 32, 64]


def main(path):
    inputs = [json.loads(line.split(" ", 1)[1]) for line in open(path) if line.startswith("model-input ")]
    if not inputs:
        sys.exit(f"{path}: no 'model-input' lines (the output of bench/distributed.sh)")
    for m in inputs:
        c, S = m["s_per_sample_1thread"], m["bytes_per_step"]
        # Loopback, 2 ranks: t(S) = S / R + 2 alpha_loop, with 2 alpha_loop = the 80-byte all-reduce.
        alpha_loop = m["allreduce_ms_80B"] / 2e3
        R = S / max(1e-9, m["allreduce_ms"] / 1e3 - 2 * alpha_loop)
        print(f"\n{m['model']}: {S / 1e6:.2f} MB all-reduced per step; {c * 1e6:.1f} us per sample on one thread; "
              f"Gloo's CPU rate here R = {R / 1e9:.2f} GB/s, loopback latency {alpha_loop * 1e6:.0f} us "
              f"(measured: 2 ranks x 1 thread at {m['ratio_2x1_vs_1x2']:.2f}x of 1 rank x 2 threads)")
        for net, (bw, alpha) in NETWORKS.items():
            print(f"  {net}:  N   comm ms   b* (rows per rank to hide it)   step ms at B = 128 N (b = 128): "
                  f"no overlap / full overlap, efficiency")
            for n in RANKS:
                comm = 2 * (n - 1) / n * S * (1 / bw + 1 / R) + 2 * (n - 1) * alpha
                compute = c * 128
                serial, overlapped = compute + comm, max(compute, comm)
                print(f"  {'':7} {n:3d} {comm * 1e3:8.2f} {comm / c:12.0f} {'':20} {serial * 1e3:8.2f} / {overlapped * 1e3:6.2f}"
                      f"   {compute / serial:4.0%} / {compute / overlapped:4.0%}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/dev/stdin")
