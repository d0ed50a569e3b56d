#!/usr/bin/python3
"""Writes the reference fixtures of the numeric tests (run with Debian's python3-torch).

For small mlp_vae models (the PyTorch module a user would write, state-dict names as latent's),
fixed inputs x and fixed noise, it computes in float64:
  recon = -log p(x|z), kl = KL(q || N(0, I)) per example, loss = mean(recon + beta * kl),
  the K-sample IWAE bound per example and its mean,
  and the gradients of loss and of -mean(IWAE bound) with respect to every parameter.
Everything goes into one safetensors file per case, written by the small writer below (not by
latent's), so the fixture also checks latent's reader against an independent writer.

    /usr/bin/python3 tests/make_fixtures.py tests/fixtures
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class MlpVae(nn.Module):
    def __init__(self, D, hidden, d, learned_variance):
        super().__init__()
        enc, i = [], D
        for h in hidden:
            enc += [nn.Linear(i, h), nn.ReLU()]
            i = h
        self.encoder = nn.Sequential(*enc)
        self.fc_mu = nn.Linear(i, d)
        self.fc_logvar = nn.Linear(i, d)
        dec, o = [], d
        for h in reversed(hidden):
            dec += [nn.Linear(o, h), nn.ReLU()]
            o = h
        dec.append(nn.Linear(o, D))
        self.decoder = nn.Sequential(*dec)
        if learned_variance:
            self.decoder_logvar = nn.Parameter(0.3 * torch.randn(D, dtype=torch.float64))


def log_px(model, likelihood, sigma, out, x):
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
    logvar = model.decoder_logvar if hasattr(model, "decoder_logvar") else torch.full_like(out, 2 * math.log(sigma))
    logvar = logvar.expand_as(out)
    return (-0.5 * (math.log(2 * math.pi) + logvar + (x - out) ** 2 / logvar.exp())).sum(-1)


def log_normal(z, mu, logvar):
    return (-0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())).sum(-1)


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float64: "F64", torch.float32: "F32"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_case(out_dir, name, D, hidden, d, likelihood, learned_variance, sigma, beta, B, K, seed):
    torch.manual_seed(seed)
    model = MlpVae(D, hidden, d, learned_variance).double()
    x = torch.rand(B, D, dtype=torch.float64)
    if likelihood == "bernoulli":
        x[: B // 2] = (x[: B // 2] > 0.5).double()  # binary and fractional targets
    eps = torch.randn(B, d, dtype=torch.float64)
    eps_k = torch.randn(K, B, d, dtype=torch.float64)

    h = model.encoder(x)
    mu, logvar = model.fc_mu(h), model.fc_logvar(h)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = -log_px(model, likelihood, sigma, model.decoder(z), x)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    loss = (recon + beta * kl).mean()
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)

    zk = mu.unsqueeze(0) + torch.exp(0.5 * logvar).unsqueeze(0) * eps_k  # [K, B, d]
    out_k = model.decoder(zk.reshape(K * B, d)).reshape(K, B, D)
    log_w = log_px(model, likelihood, sigma, out_k, x.unsqueeze(0).expand(K, B, D)) + log_normal(zk, 0 * zk, 0 * zk) - log_normal(zk, mu, logvar)
    iwae = torch.logsumexp(log_w, 0) - math.log(K)  # [B]
    iwae_grads = torch.autograd.grad(-iwae.mean(), list(params.values()))

    tensors = {k: v for k, v in params.items()}
    tensors.update({"input.x": x, "input.eps": eps, "input.eps_k": eps_k,
                    "expect.recon": recon, "expect.kl": kl, "expect.loss": loss.reshape(1),
                    "expect.iwae": iwae})
    for (k, _), g in zip(params.items(), grads):
        tensors["grad." + k] = g
    for (k, _), g in zip(params.items(), iwae_grads):
        tensors["iwae_grad." + k] = g
    config = {"type": "mlp_vae", "hidden": hidden, "latent": d, "likelihood": likelihood}
    if likelihood == "gaussian":
        config["variance"] = "learned" if learned_variance else "fixed"
        if not learned_variance:
            config["sigma"] = sigma
    save_safetensors(out_dir / f"{name}.safetensors", tensors,
                     {"config": json.dumps(config), "beta": repr(beta), "data_dim": str(D)})


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "fixtures")
    out.mkdir(parents=True, exist_ok=True)
    make_case(out, "mlp_bernoulli", D=12, hidden=[10, 8], d=3, likelihood="bernoulli", learned_variance=False,
              sigma=0.0, beta=0.7, B=6, K=9, seed=1)
    make_case(out, "mlp_gaussian_fixed", D=7, hidden=[9], d=2, likelihood="gaussian", learned_variance=False,
              sigma=0.3, beta=1.0, B=5, K=6, seed=2)
    make_case(out, "mlp_gaussian_learned", D=8, hidden=[6], d=4, likelihood="gaussian", learned_variance=True,
              sigma=0.0, beta=2.0, B=4, K=5, seed=3)


if __name__ == "__main__":
    main()
