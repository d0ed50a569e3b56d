#!/usr/bin/python3
"""A latent checkpoint in PyTorch: reads model.safetensors with a reader written from the
safetensors spec (Debian has no python3-safetensors), loads the weights into the PyTorch module a
user would write for the same config with load_state_dict(strict=True), and checks that the
encoder's output equals `latent encode`'s NPY (float32, 1e-4 absolute).

    pytorch_interop.py CHECKPOINT CODES.npy IMAGES-IDX.gz N
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    buffer = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(buffer[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).copy())
    return tensors, metadata


def mlp_vae(config, data_dim):
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}[config["activation"]]
    m = nn.Module()
    enc, i = [], data_dim
    for h in config["hidden"]:
        enc += [nn.Linear(i, h), act()]
        i = h
    m.encoder = nn.Sequential(*enc)
    m.fc_mu = nn.Linear(i, config["latent"])
    m.fc_logvar = nn.Linear(i, config["latent"])
    dec, o = [], config["latent"]
    for h in reversed(config["hidden"]):
        dec += [nn.Linear(o, h), act()]
        o = h
    dec.append(nn.Linear(o, data_dim))
    m.decoder = nn.Sequential(*dec)
    return m


def main():
    checkpoint, codes_path, images_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tensors, meta = load_safetensors(checkpoint)
    config = json.loads(meta["model"])
    shape = json.loads(meta["data_shape"])
    model = mlp_vae(config, int(np.prod(shape)))
    state = {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "data."))}
    model.load_state_dict(state, strict=True)
    raw = gzip.open(images_path).read()
    x = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16)[: n * 784].reshape(n, 784).astype(np.float32) / 255)
    with torch.no_grad():
        h = model.encoder(x)
        mu, logvar = model.fc_mu(h), model.fc_logvar(h)
    codes = torch.from_numpy(np.load(codes_path))
    err = max((codes[:, 0] - mu).abs().max().item(), (codes[:, 1] - logvar).abs().max().item())
    print(f"PyTorch encoder vs latent encode: max abs difference {err:.2e}")
    sys.exit(0 if err < 1e-4 else 1)


if __name__ == "__main__":
    main()
