"""vtc-tiny v2 model (issue 11). Differences from v1 (model.py, kept for v1):
- `features` = the select layer's hidden state (residual stream after block 3, CLS removed), width 128: no
  class-probability channels, as a real encoder's hidden_states[select_layer];
- CLS trained with an image-level multi-label objective (gen_v2.facts) through a head on the final CLS;
- the stem adds one 3 x 3 convolution mixing neighbouring patches (a glyph straddles patch borders);
- dense heads on the final layer: patch class, and for text patches the key and value of their line;
- the projector consumes the 128-wide features only (LayerNorm, SwiGLU 3 x width, linear) + positions;
- the decoder is v1's (register token, one visual block, 3 text blocks) and can return the answer position's
  cross-attention of the last block, for the optional grounding loss of train_v2.py.
Positions and TokenFLEX pooling are v1's (model.pos_features / view_pos / pool_sources / tokenflex_pool)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import gen_v2
from model import (GRID, HEADS, LAYERS, LOW_LAYER, MAX_T, MEAN, P, SELECT_LAYER, STD, WIDTH, Block,  # noqa: F401
                   Decoder, fold_bn, pool_sources, tokenflex_pool, view_pos)

DF = WIDTH  # v2 features: the select layer's hidden state only


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

    def heads(self, h):
        t = h[:, 1:]
        return self.head(t), self.key_head(t), self.val_head(t), self.facts(h[:, 0])

    def features(self, x):
        """-> patch features [B,144,128] (select-layer hidden state), cls [B,128] (final, after LayerNorm), layers."""
        h, out = self.forward(x)
        return out[SELECT_LAYER][0][:, 1:], h[:, 0], out


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


class DecoderV2(Decoder):
    """v1's decoder; text_attn() also returns the last block's head-mean cross-attention [B,T,1+K]
    (column 0 = the register token), for the grounding loss. forward() (the export) is unchanged."""

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
