"""Helpers shared by the stages: images as normalised tensors, the optimiser and its learning-rate schedule,
atomic checkpoints, and the decoder's prompt/answer encoding."""
import math
import os

import numpy as np
import torch

import tok
from model_v2 import MAX_T, MEAN, STD


def to_tensor(imgs, dev):
    """uint8 HxWx3 images -> float [B,3,H,W], normalised as manifest `normalize` says."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).to(dev).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN, device=dev)[:, None, None]) / torch.tensor(STD, device=dev)[:, None, None]


def make_opt(params, lr):
    """AdamW, betas (0.9, 0.98); weight decay 0.05 on matrices only (not on biases, norms, 1-d parameters)."""
    dec = [p for p in params if p.dim() >= 2]
    nod = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": dec, "weight_decay": 0.05}, {"params": nod, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98))


def lr_at(step, frac, base, warm=100):
    """Linear warm-up over `warm` steps, then cosine from base to 2% of it over the stage's time (frac in 0..1)."""
    if step < warm:
        return base * (step + 1) / warm
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def save_ckpt(path, **kw):
    """Written beside and renamed, so an interruption never leaves a half-written checkpoint."""
    torch.save(kw, path + ".tmp")
    os.replace(path + ".tmp", path)


def encode_questions(vocab, qs):
    """ids: [BOS] q [ANS]; target at the last question position = ANS, at ANS = EOS."""
    ids = np.full((len(qs), MAX_T), vocab["[PAD]"], np.int64)
    tgt = np.full((len(qs), MAX_T), -100, np.int64)
    for i, q in enumerate(qs):
        w = [vocab["[BOS]"]] + tok.encode(vocab, q["question"])
        a = vocab[q["answer"]]
        L = len(w)
        ids[i, :L] = w
        ids[i, L] = a
        tgt[i, L - 1] = a
        tgt[i, L] = vocab["[EOS]"]
    T = int((ids != vocab["[PAD]"]).sum(1).max())
    return ids[:, :T], tgt[:, :T]
