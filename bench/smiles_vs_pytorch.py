#!/usr/bin/python3
"""latent's SMILES VAE against the same model in PyTorch, side by side on one machine.

  bench/smiles_vs_pytorch.py LATENT_BINARY [--molecules 2048] [--threads 2] [--samples 10000] [--repeat N]
                             [--checkpoint TRAINED]

Both sides train the same network (tests/smiles_vae_reference.py's module, latent's default sizes:
embedding 64, bidirectional GRU 256, latent 56, GRU decoder 3 x 256) for one epoch on the same
molecules of the built-in pool (canonical SMILES, batch 128, Adam 1e-3, no augmentation, no
property head), and report decoder tokens per second (each molecule's tokens and its end) and
the held-out token NLL after the epoch (the same molecules held out on both sides). Then each
samples `--samples` molecules from N(0, I) with greedy decoding (max_length 120) from the same weights
(latent's one-epoch model, or --checkpoint): latent in batches of 2,000 whose finished rows leave the
batch, PyTorch in batches of 500 until every row has ended; the decoding time (latent's `sample`
prints it; its RDKit validity count afterwards is not included, PyTorch's loop has none). With
--repeat N the two sides alternate N times (a busy moment of a shared machine hits both) and the
median ratio is printed. PyTorch is Debian's python3-torch; the ratio is latent / PyTorch.
"""
import argparse
import json
import os
import re
import subprocess
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from smiles_vae_reference import SmilesVae  # noqa: E402

PAD, BOS, EOS, UNK = 0, 1, 2, 3
TOKEN = re.compile(r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])")
SIZES = dict(latent=56, embedding=64, encoder_hidden=256, decoder_hidden=256, decoder_layers=3)
MAX_LENGTH = 120


def pool_molecules(n):
    cache = os.environ.get("LATENT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "latent")
    rows = [l.split(",") for l in open(os.path.join(cache, "molecules.csv")) if l and not l.startswith("#")]
    return [r[0] for r in rows[1:] if r[1] == "0"][:n]  # the training split, in the pool's order


def vocabulary_of(checkpoint):
    """The vocabulary size of a latent checkpoint (its config in the safetensors metadata)."""
    with open(checkpoint, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(size))["__metadata__"]
    return json.loads(meta["model"])["vocabulary"]


def vocabulary(smiles):
    tokens = sorted({t for s in smiles for t in TOKEN.findall(s)})
    return ["<pad>", "<bos>", "<eos>", "<unk>"] + tokens


def encode(smiles, vocab):
    index = {t: i for i, t in enumerate(vocab)}
    rows = [[BOS] + [index.get(t, UNK) for t in TOKEN.findall(s)] + [EOS] for s in smiles]
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def token_nll(model, tokens):
    lengths = (tokens != PAD).sum(1)
    mu, logvar = model.encode(tokens, lengths)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = model.decode(z, tokens)
    b, t, v = logits.shape
    nll = torch.nn.functional.cross_entropy(logits.reshape(b * t, v), tokens[:, 1:].reshape(b * t), reduction="none",
                                            ignore_index=PAD).view(b, t).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return nll, kl


def pytorch_train(train, test, vocab):
    torch.manual_seed(0)
    model = SmilesVae(len(vocab), **SIZES)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(train))
    tokens_seen = 0
    t0 = time.perf_counter()
    for start in range(0, len(train), 128):
        batch = encode([train[i] for i in perm[start:start + 128]], vocab)
        nll, kl = token_nll(model, batch)
        loss = (nll + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens_seen += int((batch[:, 1:] != PAD).sum())
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        nll, _ = token_nll(model, encode(test, vocab))
    return tokens_seen / seconds, float(nll.mean()), model


def load_latent_weights(model, path):
    """latent's checkpoint into the PyTorch module: its tensors carry the module's state-dict names."""
    import numpy
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        data = f.read()
    state = {}
    wanted = set(model.state_dict())
    for name, t in header.items():
        if name not in wanted:  # the metadata, Adam's moments
            continue
        a, b = t["data_offsets"]
        state[name] = torch.from_numpy(numpy.frombuffer(data[a:b], dtype=numpy.float32).reshape(t["shape"]).copy())
    model.load_state_dict(state)


def pytorch_sample(model, n):
    """Greedy decoding from z ~ N(0, I) in batches of 500, until every row has ended."""
    torch.manual_seed(1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, 500):
            z = torch.randn(min(500, n - start), SIZES["latent"])
            b = z.shape[0]
            h = model.decoder_init(z).view(b, model.layers, model.hidden).transpose(0, 1).contiguous()
            token = torch.full((b,), BOS, dtype=torch.long)
            done = torch.zeros(b, dtype=torch.bool)
            for _ in range(MAX_LENGTH):
                out, h = model.decoder(torch.cat([model.embedding(token), z], 1).unsqueeze(1), h)
                token = model.output(out.squeeze(1)).argmax(1)
                token[done] = PAD
                done |= token == EOS
                if bool(done.all()):
                    break
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("latent")
    ap.add_argument("--molecules", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of both sides, alternating; prints each and the median")
    ap.add_argument("--checkpoint", help="sample from this trained smiles_vae instead of the one-epoch model (rows end "
                                         "as a trained model's do)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    molecules = pool_molecules(a.molecules)
    cpu = subprocess.run([a.latent, "info"], capture_output=True, text=True).stdout.splitlines()[1]
    print(f"CPU: {cpu}; {a.threads} threads; {len(molecules)} molecules of the pool's training split; "
          f"PyTorch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    # latent's held-out split of a file: the first 10% of a permutation drawn with its split seed
    # (LibTorch's and PyTorch's randperm share the generator), so both sides hold out the same molecules.
    n_test = round(0.1 * len(molecules))
    g = torch.Generator().manual_seed(0x5EED5EED)
    perm = torch.randperm(len(molecules), generator=g).tolist()
    train = [molecules[i] for i in perm[n_test:]]
    test = [molecules[i] for i in perm[:n_test]]
    vocab = vocabulary(molecules)
    train_ratios, sample_ratios = [], []
    for rep in range(a.repeat):  # the two sides alternate: a busy moment of the machine hits both
        ours_tokens, ours_nll, ours_sample, sampled_weights = latent_run(a, molecules)
        theirs_tokens, theirs_nll, _ = pytorch_train(train, test, vocab)
        trained = SmilesVae(sampled_weights["embedding.weight"].shape[0], **SIZES)
        trained.load_state_dict(sampled_weights)
        theirs_sample = pytorch_sample(trained, a.samples)  # the same weights latent sampled from
        train_ratios.append(ours_tokens / theirs_tokens)
        sample_ratios.append(theirs_sample / ours_sample)
        print(f"run {rep + 1}: training: latent {ours_tokens:,.0f} tokens/s, PyTorch {theirs_tokens:,.0f} tokens/s: "
              f"{train_ratios[-1]:.2f}x; held-out token NLL after one epoch: latent {ours_nll:.2f}, "
              f"PyTorch {theirs_nll:.2f} nats per molecule")
        print(f"run {rep + 1}: sampling {a.samples} molecules from the same weights ({a.checkpoint or 'the one-epoch model'}; "
              f"greedy, decoding only; latent in batches of 2,000 whose finished rows leave, PyTorch in batches of "
              f"500 until every row has ended): latent {ours_sample:.1f} s, PyTorch {theirs_sample:.1f} s: "
              f"{sample_ratios[-1]:.2f}x")
    if a.repeat > 1:
        print(f"median of {a.repeat} runs: training {statistics.median(train_ratios):.2f}x "
              f"(range {min(train_ratios):.2f}-{max(train_ratios):.2f}), sampling {statistics.median(sample_ratios):.2f}x "
              f"(range {min(sample_ratios):.2f}-{max(sample_ratios):.2f})")


def latent_run(a, molecules):
    """One epoch of latent's training, then latent's sampling; returns tokens/s, held-out NLL, the
    decoding time and the weights sampled from (as a PyTorch state dict)."""
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "molecules.smi")
        with open(data, "w") as f:
            f.write("\n".join(molecules) + "\n")
        config = dict(type="smiles_vae", augment=False, properties=[], max_length=MAX_LENGTH, **SIZES)
        run = os.path.join(work, "run")
        subprocess.run([a.latent, "train", "--data", data, "--config", json.dumps(config), "--epochs", "1",
                        "--batch-size", "128", "--lr", "1e-3", "--kl-warmup", "0", "--free-bits", "0",
                        "--threads", str(a.threads), "--quiet", "--out", run], check=True, capture_output=True)
        m = json.loads(open(os.path.join(run, "metrics.jsonl")).read().splitlines()[-1])
        sampled = a.checkpoint or os.path.join(run, "model.safetensors")
        out = subprocess.run([a.latent, "sample", sampled, "-n", str(a.samples), "-o",
                              os.path.join(work, "s.smi")], check=True, capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS=str(a.threads))).stdout
        seconds = float(re.search(r"decoded in ([0-9.]+) s", out).group(1))  # decoding alone, as PyTorch's loop
        model = SmilesVae(len(vocabulary_of(sampled)), **SIZES)
        load_latent_weights(model, sampled)
        return m["tokens_per_s"], m["test_recon"], seconds, model.state_dict()


if __name__ == "__main__":
    main()
