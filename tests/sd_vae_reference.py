#!/usr/bin/python3
"""Stable Diffusion's first-stage autoencoder (AutoencoderKL, kl-f8) and TAESD in plain PyTorch.

Written from the published architecture (Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models", and the diffusers AutoencoderKL / AutoencoderTiny documentation), with the
diffusers state-dict names, so that latent's C++ implementation has an independent reference:

  encoder: conv_in -> per level: `layers_per_block` resnets (+ a stride-2 conv, right/bottom zero pad,
           on every level but the last) -> mid (resnet, single-head self-attention, resnet) ->
           GroupNorm, SiLU, conv_out (2 x latent channels) -> quant_conv (1x1): mean, logvar
  decoder: post_quant_conv (1x1) -> conv_in -> mid -> per level, deepest first: `layers_per_block + 1`
           resnets (+ nearest 2x upsampling and a 3x3 conv on every level but the last) ->
           GroupNorm, SiLU, conv_out
  resnet:  x + conv2(SiLU(GN(conv1(SiLU(GN(x)))))), a 1x1 conv on x when channels change; GN eps 1e-6

Also renames a diffusers state dict into the other layouts found in published files (the original
LDM names, legacy diffusers attention names, prefixes of whole SD checkpoints) and writes
safetensors with a small writer of its own.

    /usr/bin/python3 tests/sd_vae_reference.py tests/fixtures/sd     # writes the test fixtures
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Resnet(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)  # [N, HW, HW]
        o = self.to_out[0](a @ v).transpose(1, 2).reshape(n, c, h, w)
        return x + o


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(c, c, groups), Resnet(c, c, groups)])
        self.attentions = nn.ModuleList([Attention(c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Conv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=1, padding=1)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, L = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c, g) for j in range(L)])
            if i + 1 < len(ch):
                down = Conv(c)
                down.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)
                blk.downsamplers = nn.ModuleList([down])
            self.down_blocks.append(blk)
            cin = c
        self.mid_block = Mid(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0].conv(F.pad(h, (0, 1, 0, 1)))
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, L = list(reversed(cfg["block_out_channels"])), cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[0], 3, padding=1)
        self.mid_block = Mid(ch[0], g)
        self.up_blocks = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c, g) for j in range(L + 1)])
            if i + 1 < len(ch):
                blk.upsamplers = nn.ModuleList([Conv(c)])
            self.up_blocks.append(blk)
            cin = c
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for blk in self.up_blocks:
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0].conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        lc = cfg["latent_channels"]
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """x in [-1, 1], [N, C, H, W] -> (mean, logvar) of the posterior, unscaled."""
        moments = self.quant_conv(self.encoder(x))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        """Unscaled latents -> images in about [-1, 1]."""
        return self.decoder(self.post_quant_conv(z))


class TinyBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv(x) + self.skip(x))


class AutoencoderTiny(nn.Module):
    """TAESD (Bohan 2023) with the diffusers AutoencoderTiny names; latents come out already scaled."""

    def __init__(self, cfg):
        super().__init__()
        enc_ch, dec_ch = cfg["encoder_block_out_channels"], cfg["decoder_block_out_channels"]
        layers = []
        for i, n in enumerate(cfg["num_encoder_blocks"]):
            c = enc_ch[i]
            layers.append(nn.Conv2d(cfg["in_channels"], c, 3, padding=1) if i == 0 else nn.Conv2d(enc_ch[i - 1], c, 3, stride=2,
                                                                                                     padding=1, bias=False))
            layers += [TinyBlock(c, c) for _ in range(n)]
        layers.append(nn.Conv2d(enc_ch[-1], cfg["latent_channels"], 3, padding=1))
        self.encoder = nn.Module()
        self.encoder.layers = nn.Sequential(*layers)
        layers = [nn.Conv2d(cfg["latent_channels"], dec_ch[0], 3, padding=1), nn.ReLU()]
        blocks = cfg["num_decoder_blocks"]
        for i, n in enumerate(blocks):
            last = i + 1 == len(blocks)
            c = dec_ch[i]
            layers += [TinyBlock(c, c) for _ in range(n)]
            if not last:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers.append(nn.Conv2d(c, c if not last else cfg["out_channels"], 3, padding=1, bias=last))
        self.decoder = nn.Module()
        self.decoder.layers = nn.Sequential(*layers)

    def encode(self, x):
        return self.encoder.layers((x + 1) / 2)

    def decode(self, z):
        return self.decoder.layers(torch.tanh(z / 3) * 3) * 2 - 1


# --- layouts -----------------------------------------------------------------------------------------

def to_ldm(state, levels):
    """diffusers names -> the original LDM (CompVis) names; attention weights as 1x1 convs."""
    out = {}
    for name, t in state.items():
        n = name
        n = n.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
        n = n.replace("mid_block.attentions.0.", "mid.attn_1.")
        for a, b in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")):
            n = n.replace("attn_1." + a, "attn_1." + b)
        n = n.replace("conv_shortcut.", "nin_shortcut.").replace("conv_norm_out.", "norm_out.")
        parts = n.split(".")
        if parts[0] == "encoder" and parts[1] == "down_blocks":
            i = parts[2]
            rest = ".".join(parts[3:]).replace("resnets.", "block.").replace("downsamplers.0.", "downsample.")
            n = f"encoder.down.{i}.{rest}"
        if parts[0] == "decoder" and parts[1] == "up_blocks":
            i = levels - 1 - int(parts[2])
            rest = ".".join(parts[3:]).replace("resnets.", "block.").replace("upsamplers.0.", "upsample.")
            n = f"decoder.up.{i}.{rest}"
        if ".attn_1." in n and t.dim() == 2:
            t = t.reshape(*t.shape, 1, 1)
        out[n] = t
    return out


def to_legacy_attention(state):
    """diffusers names with the attention names of diffusers before 0.14 (query/key/value/proj_attn)."""
    names = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    out = {}
    for name, t in state.items():
        for a, b in names.items():
            name = name.replace("attentions.0." + a, "attentions.0." + b)
        out[name] = t
    return out


DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def save_npy(path, array):
    import numpy as np
    np.save(path, array.detach().to(torch.float32).numpy())


def randomize(model, seed):
    """Weights large enough that every layer matters (PyTorch's defaults leave the outputs near zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / math.sqrt(fan_in))


SMALL = {"in_channels": 3, "out_channels": 3, "block_out_channels": [32, 64], "layers_per_block": 1, "latent_channels": 4,
         "norm_num_groups": 32}
TINY = {"in_channels": 3, "out_channels": 3, "encoder_block_out_channels": [16, 16, 16], "decoder_block_out_channels": [16, 16, 16],
        "num_encoder_blocks": [1, 2, 1], "num_decoder_blocks": [1, 2, 1], "latent_channels": 4}


def write_fixtures(out):
    """Random weights on the small config, in every layout and dtype, with the outputs they must give.

    Each file's expected outputs are computed in float64 from that file's own (rounded) weights, so a
    loader that reads F16/BF16 correctly matches to float32 accuracy."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = AutoencoderKL(SMALL)
    randomize(model, 1)
    state = {k: v.float() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    image = (torch.rand(1, 3, 24, 32, generator=g) * 2 - 1)  # not square; a multiple of 2 (factor 2^(levels-1))
    latents = torch.randn(1, 4, 12, 16, generator=g)
    save_npy(out / "image.npy", image)
    save_npy(out / "latents.npy", latents)
    cases = {
        "diffusers_f32": ({k: v for k, v in state.items()}, torch.float32),
        "ldm_f16_first_stage": ({"first_stage_model." + k: v for k, v in to_ldm(state, 2).items()}, torch.float16),
        "legacy_bf16_vae": ({"vae." + k: v for k, v in to_legacy_attention(state).items()}, torch.bfloat16),
    }
    for name, (tensors, dtype) in cases.items():
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
        save_safetensors(out / f"{name}.safetensors", tensors)
        rounded = AutoencoderKL(SMALL).double()
        rounded.load_state_dict({k: v.double() for k, v in zip(state.keys(), [t.to(dtype) for t in state.values()])})
        with torch.no_grad():
            mean, logvar = rounded.encode(image.double())
            decoded = rounded.decode(latents.double())
        save_npy(out / f"{name}.mean.npy", mean)
        save_npy(out / f"{name}.logvar.npy", logvar)
        save_npy(out / f"{name}.decoded.npy", decoded)
    (out / "config.json").write_text(json.dumps(dict(SMALL, _class_name="AutoencoderKL", scaling_factor=0.5), indent=1) + "\n")

    tiny = AutoencoderTiny(TINY)
    randomize(tiny, 3)
    (out / "taesd").mkdir(exist_ok=True)
    save_safetensors(out / "taesd" / "diffusion_pytorch_model.safetensors", {k: v.float() for k, v in tiny.state_dict().items()})
    tiny = tiny.double()
    with torch.no_grad():
        save_npy(out / "taesd" / "latents.npy", tiny.encode(image.double()))
        save_npy(out / "taesd" / "decoded.npy", tiny.decode(latents.double()))
    (out / "taesd" / "config.json").write_text(json.dumps(dict(TINY, _class_name="AutoencoderTiny"), indent=1) + "\n")


if __name__ == "__main__":
    write_fixtures(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/sd")
