#!/usr/bin/python3
"""PyTorch reference of latent's SMILES VAE network (src/models/smiles_vae/): writes
tests/fixtures/smiles_vae_reference.safetensors with the weights, a padded token batch, the noise,
and PyTorch's encodings, logits, per-molecule token NLL, KL, loss and every parameter's gradient.

    /usr/bin/python3 tests/smiles_vae_reference.py tests/fixtures/smiles_vae_reference.safetensors
"""
import sys

import torch
from torch import nn

import sd_vae_reference as ref

PAD, BOS, EOS = 0, 1, 2
ref.DTYPES[torch.int64] = "I64"


class SmilesVae(nn.Module):
    def __init__(self, vocabulary, latent, embedding, encoder_hidden, decoder_hidden, decoder_layers):
        super().__init__()
        self.layers, self.hidden = decoder_layers, decoder_hidden
        self.embedding = nn.Embedding(vocabulary, embedding, padding_idx=PAD)
        self.encoder = nn.GRU(embedding, encoder_hidden, batch_first=True, bidirectional=True)
        self.fc_mu = nn.Linear(2 * encoder_hidden, latent)
        self.fc_logvar = nn.Linear(2 * encoder_hidden, latent)
        self.decoder_init = nn.Linear(latent, decoder_layers * decoder_hidden)
        self.decoder = nn.GRU(embedding + latent, decoder_hidden, num_layers=decoder_layers, batch_first=True)
        self.output = nn.Linear(decoder_hidden, vocabulary)

    def encode(self, tokens, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.encoder(packed)
        both = torch.cat([h[0], h[1]], 1)
        return self.fc_mu(both), self.fc_logvar(both)

    def decode(self, z, tokens):
        b, t = tokens.shape[0], tokens.shape[1] - 1
        x = torch.cat([self.embedding(tokens[:, :t]), z.unsqueeze(1).expand(b, t, z.shape[1])], 2)
        h0 = self.decoder_init(z).view(b, self.layers, self.hidden).transpose(0, 1).contiguous()
        out, _ = self.decoder(x, h0)
        return self.output(out)


def main(out):
    torch.manual_seed(7)
    sizes = dict(vocabulary=12, latent=4, embedding=6, encoder_hidden=5, decoder_hidden=7, decoder_layers=2)
    model = SmilesVae(**sizes)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.6, 0.6)
        model.embedding.weight[PAD].zero_()
    rows = [[BOS, 5, 6, 7, 4, 8, EOS, PAD, PAD],
            [BOS, 9, EOS, PAD, PAD, PAD, PAD, PAD, PAD],
            [BOS, 4, 4, 10, 11, 3, 5, 6, EOS]]
    tokens = torch.tensor(rows)
    lengths = (tokens != PAD).sum(1)
    eps = torch.randn(3, sizes["latent"])
    mu, logvar = model.encode(tokens, lengths)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decode(z, tokens)
    b, t, v = logits.shape
    nll = nn.functional.cross_entropy(logits.reshape(b * t, v), tokens[:, 1:].reshape(b * t), reduction="none",
                                      ignore_index=PAD).view(b, t).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    loss = (nll + kl).mean()
    loss.backward()
    tensors = {name: p.detach() for name, p in model.named_parameters()}
    tensors.update({"in.tokens": tokens, "in.lengths": lengths, "in.eps": eps, "out.mu": mu, "out.logvar": logvar,
                    "out.logits": logits, "out.nll": nll, "out.kl": kl, "out.loss": loss.reshape(1)})
    tensors.update({"grad." + name: p.grad for name, p in model.named_parameters()})
    ref.save_safetensors(out, tensors, {k: str(v) for k, v in sizes.items()})
    print(f"{out}: loss {loss.item():.6f}, {len(tensors)} tensors")


if __name__ == "__main__":
    main(sys.argv[1])
