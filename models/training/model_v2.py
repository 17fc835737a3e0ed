"""vtc-tiny v2 model (issue 11): vision encoder, TokenFLEX projector, cross-attention decoder.
- `features` = the select layer's hidden state (residual stream after block 3, CLS removed), width 128: no
  class-probability channels, as a real encoder's hidden_states[select_layer];
- CLS trained with an image-level multi-label objective (gen_v2.facts) through a head on the final CLS;
- the stem adds one 3 x 3 convolution mixing neighbouring patches (a glyph straddles patch borders);
- dense heads on the select layer: patch class, and for text patches the key and value of their line (the
  key of a table cell is its row and column, of a bar its letter);
- the projector consumes the 128-wide features only (LayerNorm, SwiGLU 3 x width, linear) + positions;
- the decoder (register token, one visual block, 3 text blocks) can return the answer position's
  cross-attention of the last block, for the optional grounding loss of stage2_v2.py.
Attention is written by hand so that head-mean probabilities, keys and CLS queries are exportable.
Position features and TokenFLEX pooling are in positions.py."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import gen_v2
from gen import GRID
from positions import P

WIDTH, HEADS, LAYERS = 128, 4, 4
SELECT_LAYER, LOW_LAYER = 3, 1
DF = WIDTH  # v2 features: the select layer's hidden state only
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


class EncoderV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 64, 4, 4)
        self.bn = nn.BatchNorm2d(64)
        self.c2 = nn.Conv2d(64, WIDTH, 3, 2, 1)
        self.mix = nn.Conv2d(WIDTH, WIDTH, 3, 1, 1)
        self.cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos = nn.Parameter(torch.randn(1, GRID * GRID + 1, WIDTH) * 0.02)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(WIDTH)
        self.snorm = nn.LayerNorm(WIDTH)                 # the dense heads read the select layer (see heads())
        self.head = nn.Linear(WIDTH, gen_v2.NC)          # patch class
        self.key_head = nn.Linear(WIDTH, gen_v2.NKEY)    # key of the patch's line (0 = none)
        self.val_head = nn.Linear(WIDTH, gen_v2.NVAL)    # value of the patch's line or cell (0 = none)
        self.facts = nn.Linear(WIDTH, gen_v2.NFACT)      # CLS: image-level multi-label facts

    def forward(self, x):
        x = self.c2(F.gelu(self.bn(self.c1(x))))
        x = x + self.mix(F.gelu(x))
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        out = {}
        for i, b in enumerate(self.blocks, 1):
            x, p, k, q = b(x)
            if i in (LOW_LAYER, SELECT_LAYER):
                out[i] = (x, p.mean(1), k, q[:, 0])
        h = self.norm(x)
        return h, out

    def heads(self, h, out):
        """Dense heads on the select layer's hidden state (what the projector is fed: a real encoder's
        penultimate layer carries what its patches show, linearly), the CLS facts on the final layer. With the
        dense heads on the final layer (the run of 2026-12-01) the select layer carried too little of the
        line bindings for the decoder to read them."""
        t = self.snorm(out[SELECT_LAYER][0][:, 1:])
        return self.head(t), self.key_head(t), self.val_head(t), self.facts(h[:, 0])

    def features(self, x):
        """-> patch features [B,144,128] (select-layer hidden state), cls [B,128] (final, after LayerNorm), layers."""
        h, out = self.forward(x)
        return out[SELECT_LAYER][0][:, 1:], h[:, 0], out


def fold_bn(enc):
    """Fold eval-mode BatchNorm into the first conv (for export)."""
    bn, c = enc.bn, enc.c1
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    c.weight.data = c.weight.data * s[:, None, None, None]
    c.bias.data = (c.bias.data - bn.running_mean) * s + bn.bias
    enc.bn = nn.Identity()
    return enc


class ProjectorV2(nn.Module):
    """TokenFLEX projector: LayerNorm, SwiGLU (hidden 3 x width), linear to the decoder width; plus a linear
    embedding of the 20 position features."""

    def __init__(self, w=WIDTH):
        super().__init__()
        self.ln = nn.LayerNorm(DF)
        self.g, self.u, self.o = nn.Linear(DF, 3 * w), nn.Linear(DF, 3 * w), nn.Linear(3 * w, w)
        self.po = nn.Linear(P, w)

    def forward(self, feats, pos):
        h = self.ln(feats)
        return self.o(F.silu(self.g(h)) * self.u(h)) + self.po(pos)


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


class DecoderV2(Decoder):
    """The decoder; text_attn() also returns the last block's head-mean cross-attention [B,T,1+K]
    (column 0 = the register token), for the grounding loss. forward() (the export) does not use it."""

    def text_attn(self, ids, mem, mem_bias, mem_idx=None):
        T = ids.shape[1]
        x = self.emb(ids) + self.tpos[:, :T]
        causal = torch.triu(torch.full((T, T), -1e9, device=ids.device), 1)[None, None]
        att = None
        for b in self.blocks:
            y, _, _, _ = b.att(b.n1(x), bias=causal)
            x = x + y
            c, att, _, _ = b.catt(b.nc(x), kv=mem, bias=mem_bias, kv_idx=mem_idx)
            x = x + c
            x = x + b.mlp(b.n2(x))
        return self.norm(x) @ self.emb.weight.t(), att.mean(1)
