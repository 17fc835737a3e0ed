"""Reading probe (issue 11): can a fresh projector + decoder learn to read from WORK's feature cache?

Trains on documents only, reading questions only (doc_value, doc_key, doc_cell, doc_bar_label), every token of
every view (or another stage-2 regime), and prints per-type training accuracy and the answer position's
cross-attention mass on the question's footprint. Minutes instead of the full pipeline's two hours, to try a
change to stage 2 before paying for a whole run. Optional `--align W` and `--one-crop`: stage 2's alignment loss
and one-crop pages (stage2_v2.py says what they do; the probe uses the same functions, on WORK's labels.npy).

  /usr/bin/python3 models/training/probe_reading.py [--work WORK] [--minutes 6] [--mode all] [--att 0.5]
                                                    [--lr 1e-3] [--align 0] [--docs 4]
"""
import argparse
import os
import pickle
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stage2_v2 as S  # noqa: E402
import tok  # noqa: E402
from common import encode_questions, make_opt  # noqa: E402
from model_v2 import WIDTH, DecoderV2, ProjectorV2  # noqa: E402

READING = S.READING


class _Scale(torch.nn.Module):
    def __init__(self, att):
        super().__init__()
        self.att = [att]  # not a submodule: the parameter is registered on the attention itself

    def forward(self, x):
        return x * self.att[0].temp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(HERE, "work_v2"))
    ap.add_argument("--minutes", type=float, default=6)
    ap.add_argument("--mode", default="all", choices=S.MODES)
    ap.add_argument("--att", type=float, default=0.5, help="grounding loss weight (constant)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--align", type=float, default=0.0, help="alignment loss weight (0 = off)")
    ap.add_argument("--docs", type=int, default=4, help="pages per step (8 reading questions each)")
    ap.add_argument("--temp", type=float, default=0.0,
                    help="learnt scale of the text blocks' cross-attention logits, initial value (0 = none)")
    ap.add_argument("--one-crop", action="store_true",
                    help="memory = the one crop that holds the questions' footprints (144 tokens, not the page)")
    ap.add_argument("--mem-norm", action="store_true",
                    help="a LayerNorm on the memory before the cross-attentions (today the keys see the raw stream)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab = tok.load_vocab(os.path.join(args.work, "tokenizer.json"))
    feats = np.load(os.path.join(args.work, "feats.npy"), mmap_mode="r")
    bg = np.load(os.path.join(args.work, "bg.npy"), mmap_mode="r")
    labels = np.load(os.path.join(args.work, "labels.npy"), mmap_mode="r")
    items = pickle.load(open(os.path.join(args.work, "items.pkl"), "rb"))
    docs = [i for i, it in enumerate(items) if it[0] == "doc"]
    tables = S.word_tables(vocab)
    S.MODE_P = [1.0 if m == args.mode else 0.0 for m in S.MODES]
    proj, dec, anorm = ProjectorV2(), DecoderV2(len(vocab)), torch.nn.LayerNorm(WIDTH)
    mnorm = torch.nn.LayerNorm(WIDTH)
    params = list(proj.parameters()) + list(dec.parameters()) + list(anorm.parameters()) + list(mnorm.parameters())
    if args.temp > 0:  # scales the queries, so the logits, of every cross-attention (a learnt temperature)
        for b in dec.blocks:
            b.catt.temp = torch.nn.Parameter(torch.tensor(float(args.temp)))
            b.catt.q = torch.nn.Sequential(b.catt.q, _Scale(b.catt))
            params.append(b.catt.temp)
    opt = make_opt(params, args.lr)
    rng = np.random.default_rng(1)
    t0, step, meter, masses = time.time(), 0, {}, []
    while time.time() - t0 < args.minutes * 60:
        sel = [docs[i] for i in rng.choice(len(docs), args.docs, replace=False)]
        vf, vp, vm, srcs = S.build(items, feats, bg, sel, rng, "cpu")
        asked = S.one_crop(items, sel, srcs, vm, rng) if args.one_crop else None
        qs, qimg = [], []
        for j, s in enumerate(sel):
            iq = [q for q in (items[s][3] if asked is None else asked[j]) if q["type"] in READING]
            for qi in rng.choice(len(iq), 8):
                qs.append(iq[qi])
                qimg.append(j)
        ids, tgt = (torch.from_numpy(a) for a in encode_questions(vocab, qs))
        tokens = proj(vf, vp)
        mem, bias = dec.visual(tokens, vm)
        if args.mem_norm:
            mem = mnorm(mem)
        logits, att = dec.text_attn(ids, mem, bias, torch.tensor(qimg))
        last = (ids != vocab["[PAD]"]).sum(1) - 2
        ar = torch.arange(len(qs))
        ce = F.cross_entropy(logits[ar, last], tgt[ar, last])
        loss = ce
        tm = torch.from_numpy(np.stack([S.target_mask(q, items[sel[j]][2], srcs[j], vf.shape[1]) for q, j in zip(qs, qimg)]))
        has = tm.any(1)
        mass = (att[ar, last] * tm).sum(1)[has]
        masses.append(mass.mean().item())
        if args.att > 0:
            loss = loss + args.att * (-torch.log(mass + 1e-6)).mean()
        if args.align > 0 and args.mode == "all":
            words = S.align_targets(items, labels, sel, srcs, vf.shape[1], tables)
            loss = loss + args.align * S.align_loss(anorm, tokens, dec.emb.weight, words)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ok = (logits[ar, last].argmax(-1) == tgt[ar, last]).float().tolist()
        for q, o in zip(qs, ok):
            meter.setdefault(q["type"], []).append(o)
        step += 1
        if step % 25 == 0:
            acc = " ".join(f"{k}={np.mean(v):.3f}" for k, v in sorted(meter.items()))
            print(f"step {step} {(time.time() - t0) / 60:.1f} min  ce {ce.item():.3f}  footprint mass "
                  f"{np.mean(masses):.3f}  {acc}", flush=True)
            meter, masses = {}, []


if __name__ == "__main__":
    main()
