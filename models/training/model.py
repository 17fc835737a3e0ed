"""vtc-tiny: vision encoder (conv stem + 4 pre-LN blocks), TokenFLEX projector, cross-attention decoder.
Attention is written by hand so that head-mean probabilities, keys and CLS queries are exportable."""
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gen import NC, GRID

WIDTH, HEADS, LAYERS = 128, 4, 4
SELECT_LAYER, LOW_LAYER = 3, 1
DF = WIDTH + NC  # feature layout: [final-layer hidden after final LayerNorm (128) | dense-head softmax (NC)]
P = 20           # position features, see pos_features
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
MAX_T = 24


class Attn(nn.Module):
    def __init__(self, w=WIDTH, h=HEADS):
        super().__init__()
        self.h, self.dh = h, w // h
        self.q, self.k, self.v, self.o = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x, kv=None, bias=None, kv_idx=None):
        """kv_idx: optional row of kv (and bias) for each row of x, so that keys/values of a shared memory
        are projected once per image (training only; the export passes none)."""
        kv = x if kv is None else kv
        B, T, W = x.shape
        S = kv.shape[1]
        q, k, v = self.q(x), self.k(kv), self.v(kv)
        if kv_idx is not None:
            k, v = k[kv_idx], v[kv_idx]
            bias = bias[kv_idx]
        qh = q.view(B, T, self.h, self.dh).transpose(1, 2)
        kh = k.view(B, S, self.h, self.dh).transpose(1, 2)
        vh = v.view(B, S, self.h, self.dh).transpose(1, 2)
        a = qh @ kh.transpose(-1, -2) / math.sqrt(self.dh)
        if bias is not None:
            a = a + bias
        p = a.softmax(-1)
        y = (p @ vh).transpose(1, 2).reshape(B, T, W)
        return self.o(y), p, k, q


def mlp(w, m=4):
    return nn.Sequential(nn.Linear(w, m * w), nn.GELU(), nn.Linear(m * w, w))


class Block(nn.Module):
    def __init__(self, w=WIDTH, cross=False):
        super().__init__()
        self.n1, self.att = nn.LayerNorm(w), Attn(w)
        self.cross = cross
        if cross:
            self.nc, self.catt = nn.LayerNorm(w), Attn(w)
        self.n2, self.mlp = nn.LayerNorm(w), mlp(w)

    def forward(self, x, bias=None, mem=None, mem_bias=None, mem_idx=None):
        y, p, k, q = self.att(self.n1(x), bias=bias)
        x = x + y
        if self.cross:
            x = x + self.catt(self.nc(x), kv=mem, bias=mem_bias, kv_idx=mem_idx)[0]
        return x + self.mlp(self.n2(x)), p, k, q


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 64, 4, 4)
        self.bn = nn.BatchNorm2d(64)
        self.c2 = nn.Conv2d(64, WIDTH, 3, 2, 1)
        self.cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos = nn.Parameter(torch.randn(1, GRID * GRID + 1, WIDTH) * 0.02)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, NC)       # dense head (per patch class)
        self.presence = nn.Linear(WIDTH, NC)   # CLS: which classes are present (multi-label)

    def forward(self, x):
        x = self.c2(F.gelu(self.bn(self.c1(x))))
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        out = {}
        for i, b in enumerate(self.blocks, 1):
            x, p, k, q = b(x)
            if i in (LOW_LAYER, SELECT_LAYER):
                out[i] = (x, p.mean(1), k, q[:, 0])
        h = self.norm(x)
        logits = self.head(h)
        return h, logits, self.presence(h[:, 0]), out

    def features(self, x):
        h, logits, _, out = self.forward(x)
        f = torch.cat([h, logits.softmax(-1)], -1)
        return f[:, 1:], f[:, 0], out


def fold_bn(enc):
    """Fold eval-mode BatchNorm into the first conv (for export)."""
    bn, c = enc.bn, enc.c1
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    c.weight.data = c.weight.data * s[:, None, None, None]
    c.bias.data = (c.bias.data - bn.running_mean) * s + bn.bias
    enc.bn = nn.Identity()
    return enc


class Projector(nn.Module):
    """TokenFLEX projector: LayerNorm, SwiGLU (hidden 3 x width), linear to decoder width, applied to the
    hidden part of each token; plus linear embeddings of the class probabilities and of the positions."""

    def __init__(self, w=WIDTH):
        super().__init__()
        self.ln = nn.LayerNorm(WIDTH)
        self.g, self.u, self.o = nn.Linear(WIDTH, 3 * w), nn.Linear(WIDTH, 3 * w), nn.Linear(3 * w, w)
        self.pr = nn.Linear(NC, w)
        self.po = nn.Linear(P, w)

    def forward(self, feats, pos):
        h = self.ln(feats[..., :WIDTH])
        return self.o(F.silu(self.g(h)) * self.u(h)) + self.pr(feats[..., WIDTH:]) + self.po(pos)


class Decoder(nn.Module):
    def __init__(self, vocab, w=WIDTH, text_layers=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, w)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.tpos = nn.Parameter(torch.randn(1, MAX_T, w) * 0.02)
        self.reg = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.vblock = Block(w)
        self.blocks = nn.ModuleList([Block(w, cross=True) for _ in range(text_layers)])
        self.norm = nn.LayerNorm(w)

    def visual(self, vis, vmask):
        """vis [B,K,W], vmask [B,K] (1 = token present) -> memory [B,K+1,W] and its attention bias."""
        B = vis.shape[0]
        m = torch.cat([torch.ones_like(vmask[:, :1]), vmask], 1)
        bias = ((m - 1.0) * 1e9)[:, None, None, :]
        x = torch.cat([self.reg.expand(B, -1, -1), vis], 1)
        x = self.vblock(x, bias=bias)[0]
        return x, bias

    def text(self, ids, mem, mem_bias, mem_idx=None):
        T = ids.shape[1]
        x = self.emb(ids) + self.tpos[:, :T]
        causal = torch.triu(torch.full((T, T), -1e9, device=ids.device), 1)[None, None]
        for b in self.blocks:
            x = b(x, bias=causal, mem=mem, mem_bias=mem_bias, mem_idx=mem_idx)[0]
        return self.norm(x) @ self.emb.weight.t()

    def forward(self, ids, vis, vmask):
        mem, bias = self.visual(vis, vmask)
        return self.text(ids, mem, bias)


# Positions and pooling (mirrored in TS) live in positions.py, shared with v2 (same code).
from positions import pool_sources, pos_features, tokenflex_pool, view_pos  # noqa: E402,F401
