#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid inputs of every kind the
targets read, so that fuzzing starts from files the project really reads and writes.

    /usr/bin/python3 fuzz/make_corpus.py BUILD/latent

Needs numpy and torch (Debian python3-numpy, python3-torch) and a built `latent` for a real checkpoint."""
import base64
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from sd_vae_reference import AutoencoderKL, AutoencoderTiny, randomize, save_safetensors  # noqa: E402


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy(a):
    path = tempfile.mktemp(suffix=".npy")
    np.save(path, a)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def idx(a):
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    head = struct.pack(">BBBB", 0, 0, codes[a.dtype.type], a.ndim) + b"".join(struct.pack(">I", n) for n in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def main():
    latent = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "latent")
    rng = np.random.default_rng(0)
    # npy
    put("npy", "uint8.npy", npy(rng.integers(0, 255, (2, 3, 3), dtype=np.uint8)))
    put("npy", "float32.npy", npy(rng.standard_normal(4).astype(np.float32)))
    put("npy", "int64.npy", npy(np.arange(6, dtype=np.int64).reshape(2, 3)))
    # idx: the first byte picks raw (0) or gzip (1)
    images = rng.integers(0, 255, (2, 4, 4), dtype=np.uint8)
    put("idx", "images.idx", b"\x00" + idx(images))
    put("idx", "images.idx.gz", b"\x01" + gzip.compress(idx(images), mtime=0))
    put("idx", "labels.idx", b"\x00" + idx(np.array([3, 1, 4], dtype=np.uint8)))
    put("idx", "floats.idx", b"\x00" + idx(rng.standard_normal((2, 3)).astype(np.float32)))
    # csv
    put("csv", "header.csv", "a,b,c\n0.1,2,-3e-2\n4,5.5,6\n")
    put("csv", "plain.csv", "1,2\n3,4\n\n5,6\n")
    with tempfile.TemporaryDirectory() as tmp:
        # a real checkpoint of a tiny model, and a PNG the command wrote
        data = os.path.join(tmp, "t.csv")
        with open(data, "w") as f:
            for row in rng.random((40, 3)):
                f.write(",".join(f"{v:.3f}" for v in row) + "\n")
        cfg = json.dumps({"type": "mlp_vae", "hidden": [4], "latent": 2})
        subprocess.run([latent, "train", "--data", data, "--config", cfg, "--epochs", "1", "--out", os.path.join(tmp, "run"),
                        "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, "run", "model.safetensors"), "rb") as f:
            ck = f.read()
        put("checkpoint", "mlp_vae.safetensors", ck)
        put("safetensors", "checkpoint.safetensors", ck)
    # safetensors of every dtype, and an SD-layout file
    t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2, dtype=torch.float16),
         "c": torch.zeros(1, 2, dtype=torch.bfloat16)}
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "x.safetensors")
        save_safetensors(p, t, {"format": "pt"})
        put("safetensors", "dtypes.safetensors", open(p, "rb").read())
        kl = AutoencoderKL({"in_channels": 3, "out_channels": 3, "block_out_channels": [4, 4], "layers_per_block": 1,
                            "latent_channels": 2, "norm_num_groups": 2})
        randomize(kl, 1)
        save_safetensors(p, {k: v.half() for k, v in kl.state_dict().items()})
        put("sd_weights", "kl_tiny_f16.safetensors", open(p, "rb").read())
        tiny = AutoencoderTiny({"in_channels": 3, "out_channels": 3, "encoder_block_out_channels": [4, 4],
                      "decoder_block_out_channels": [4, 4], "num_encoder_blocks": [1, 1], "num_decoder_blocks": [1, 1],
                      "latent_channels": 2})
        randomize(tiny, 2)
        save_safetensors(p, {k: v.half() for k, v in tiny.state_dict().items()})
        put("sd_weights", "taesd_tiny_f16.safetensors", open(p, "rb").read())
    # images: PNG gray and RGB, BMP
    if True:
        def png_bytes(w, h, channels):
            raw = b"".join(b"\x00" + bytes(rng.integers(0, 255, w * channels, dtype=np.uint8)) for _ in range(h))
            chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
            color = {1: 0, 3: 2}[channels]
            return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) +
                    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        gray, rgb = png_bytes(4, 4, 1), png_bytes(5, 3, 3)
        put("image", "gray.png", gray)
        put("image", "rgb.png", rgb)
        row = 4 * 3
        bmp_pixels = bytes(rng.integers(0, 255, row * 2, dtype=np.uint8))
        put("image", "rgb.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp_pixels), 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 24, 0, len(bmp_pixels), 2835, 2835, 0, 0) + bmp_pixels)
    # request bodies
    put("request", "decode.json", '{"z": [[0, 0.5, -1.25], [1e-3, 2, 3]]}')
    put("request", "index.json", '{"index": 2}')
    put("request", "sample.json", '{"n": 8, "seed": 3, "temperature": 1}')
    put("request", "interpolate.json", '{"a": [1, 0, 0], "b": [0, 2, 0], "t": [0, 0.5, 1], "method": "slerp"}')
    put("request", "upload.json", json.dumps({"png": base64.b64encode(gray).decode()}))
    # molecules: the first byte picks the reader (0 .smi, 1 .csv)
    put("smiles", "drugs.smi", b"\x00smiles name\nCC(=O)Oc1ccccc1C(=O)O aspirin\nCN1C=NC2=C1C(=O)N(C(=O)N2C)C caffeine\n"
        b"C[C@H](N)C(=O)O\nO=[N+]([O-])c1ccc(Cl)cc1\nC1CC2CCC1C2\n[nH]1cccc1Br\nC%10CCCCC%10\n")
    put("smiles", "zinc.csv", b"\x01smiles,logP,qed,SAS\n\"CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1\",5.05,0.70,2.08\n"
        b"C[C@@H]1CC(Nc2cncc(-c3nncn3C)c2)C[C@@H](C)C1,3.11,0.92,4.03\nOCC,-0.0,0.4,1.0\n")


if __name__ == "__main__":
    main()
