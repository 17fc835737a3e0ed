"""Held-out accuracy of vtc-tiny v2 in PyTorch (weights from WORK, images read back from OUT/eval) and the bars
of issue 11. Run alone: /usr/bin/python3 models/training/evaluate_v2.py [--work DIR] [--out DIR]

Rows: all tokens; background dropped (every patch labelled background, eval/background.json); global view only;
crops only; blind (no visual token); random 11% (3 seeds: mean and spread); CLS-attention top 11% (select layer);
TokenFLEX 6x6 and 4x4; most common answer per question template. 11% = 15 tokens per view, raster order.
Columns: scenes, documents, and "small" = a footprint of 1..4 patches (page patches for documents)."""
import argparse
import json
import os
import sys
from collections import Counter, defaultdict

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402
import tok  # noqa: E402
from common import to_tensor  # noqa: E402
from export_v2 import load_models  # noqa: E402
from model_v2 import GRID, SELECT_LAYER  # noqa: E402
from positions import pool_sources, tokenflex_pool, view_pos  # noqa: E402

N = GRID * GRID
K11 = max(1, int(N * 0.11))
RANDOM_SEEDS = (0, 1, 2)
METHODS = ["all", "background", "global_only", "crops_only", "blind"] + [f"random11_s{s}" for s in RANDOM_SEEDS] + \
    ["cls11", "pool6", "pool4"]
COLS = {"scenes": lambda q: q["kind"] == "scene", "scenes_small": lambda q: q["kind"] == "scene" and q["small"],
        "docs": lambda q: q["kind"] == "doc", "docs_small": lambda q: q["kind"] == "doc" and q["small"]}


def select(method, feats, attn, bg, img_k):
    """-> per view (tokens [k,D], sources as a list of index lists)."""
    V = feats.shape[0]
    out = []
    for v in range(V):
        f = feats[v]
        is_global = v == V - 1
        idx = np.arange(N)
        if method == "background":
            idx = np.setdiff1d(idx, bg[v])
        elif method == "blind" or (method == "global_only" and V > 1 and not is_global) or \
                (method == "crops_only" and V > 1 and is_global):
            idx = idx[:0]
        elif method.startswith("random11"):
            idx = np.sort(np.random.default_rng([int(method[-1]), img_k, v]).choice(N, K11, replace=False))
        elif method == "cls11":
            idx = np.sort(np.lexsort((np.arange(N), -attn[v, 0, 1:].numpy()))[:K11])
        elif method.startswith("pool"):
            n = int(method[4:])
            out.append((tokenflex_pool(f[None], n)[0], pool_sources(n)))
            continue
        out.append((f[idx], [[i] for i in idx]))
    return out


@torch.no_grad()
def measure(work, out):
    enc, proj, dec, vocab = load_models(work)
    inv = {i: w for w, i in vocab.items()}
    rows = [json.loads(line) for line in open(os.path.join(out, "eval", "questions.jsonl"))]
    background = json.load(open(os.path.join(out, "eval", "background.json")))
    by_img = defaultdict(list)
    for r in rows:
        by_img[r["image"]].append(r)
    res = {m: [] for m in METHODS}
    for k, (name, qs) in enumerate(sorted(by_img.items())):
        img = np.array(Image.open(os.path.join(out, "eval", name)).convert("RGB"))
        views, rc = (gen.doc_views(img) if qs[0]["kind"] == "doc" else ([img], None))
        rc = tuple(rc) if rc else None
        feats, _, lay = enc.features(to_tensor(views, "cpu"))
        attn = lay[SELECT_LAYER][1]
        prompts = [[vocab["[BOS]"]] + tok.encode(vocab, q["question"]) for q in qs]
        T = max(map(len, prompts))
        ids = torch.tensor([p + [vocab["[PAD]"]] * (T - len(p)) for p in prompts])
        last = torch.tensor([len(p) - 1 for p in prompts])
        for m in METHODS:
            sel = select(m, feats, attn, background[name], k)
            tf = torch.cat([t for t, _ in sel])[None]
            pos = [view_pos(s, v, rc) for v, (_, s) in enumerate(sel) if len(s)]
            pos = torch.from_numpy(np.concatenate(pos))[None] if pos else torch.zeros(1, 0, 20)
            vis = proj(tf, pos).expand(len(qs), -1, -1)
            mask = torch.ones(len(qs), vis.shape[1])
            if vis.shape[1] == 0:  # no token: one masked-out placeholder (as in training; torch 1.13 fails on K = 0)
                vis, mask = torch.zeros(len(qs), 1, vis.shape[2]), torch.zeros(len(qs), 1)
            logits = dec(ids, vis, mask)
            pred = logits[torch.arange(len(qs)), last].argmax(-1)
            for q, p in zip(qs, pred.tolist()):
                res[m].append((q, inv[p] == q["answer"]))
    return rows, res


def acc(pairs, f):
    s = [ok for q, ok in pairs if f(q)]
    return round(float(np.mean(s)), 4) if s else None


def bars(t):
    """The bars of issue 11, from the accuracy table t[method][column]."""
    b = []

    def add(name, value, op, limit):
        ok = value is not None and (value >= limit if op == ">=" else value <= limit)
        b.append(dict(bar=name, value=None if value is None else round(value, 4), op=op, limit=round(limit, 4), ok=bool(ok)))
    add("full tokens, scenes", t["all"]["scenes"], ">=", 0.90)
    add("full tokens, documents", t["all"]["docs"], ">=", 0.80)
    for c, label in (("scenes", "scenes"), ("docs", "documents")):
        add(f"background dropped, {label}: |change| in points", abs(t["background"][c] - t["all"][c]) * 100, "<=", 2.0)
    add("documents: global view only <= blind + 15 points", t["global_only"]["docs"], "<=", t["blind"]["docs"] + 0.15)
    add("documents: random 11% loses >= 25 points", (t["all"]["docs"] - t["random11"]["docs"]) * 100, ">=", 25.0)
    return b


def run(args=None):
    work = args.work if args else os.path.join(HERE, "work_v2")
    out = args.out if args else os.path.join(work, "vtc-tiny")
    rows, res = measure(work, out)
    common = {t: Counter(r["answer"] for r in rows if r["template"] == t).most_common(1)[0][0] for t in {r["template"] for r in rows}}
    table = {m: {c: acc(res[m], f) for c, f in COLS.items()} for m in METHODS}
    rnd = [table.pop(f"random11_s{s}") for s in RANDOM_SEEDS]
    table["random11"] = {c: (None if rnd[0][c] is None else round(float(np.mean([r[c] for r in rnd])), 4)) for c in COLS}
    spread = {c: (None if rnd[0][c] is None else round(float(np.ptp([r[c] for r in rnd])), 4)) for c in COLS}
    table["most_common_per_template"] = {c: acc([(r, r["answer"] == common[r["template"]]) for r in rows], f) for c, f in COLS.items()}
    res["random11"] = res["random11_s0"]
    shown = ["all", "random11", "cls11", "global_only", "blind"]
    per_type = {t: {m: acc(res[m], lambda q, t=t: q["type"] == t) for m in shown} for t in sorted(common)}
    b = bars(table)
    counts = {c: sum(bool(f(r)) for r in rows) for c, f in COLS.items()}
    lines = [f"held-out questions: {counts}; 11% = {K11} tokens per view; small = footprint of 1..4 patches",
             f"{'method':26s}" + "".join(f"{c:>14s}" for c in COLS)]
    for m, row in table.items():
        lines.append(f"{m:26s}" + "".join(f"{(row[c] if row[c] is not None else float('nan')):14.3f}" for c in COLS))
    lines.append(f"{'random11 spread (3 seeds)':26s}" + "".join(f"{(spread[c] if spread[c] is not None else float('nan')):14.3f}" for c in COLS))
    lines.append("per type (" + " / ".join(shown) + "; random11 = seed 0):")
    for t, row in per_type.items():
        lines.append(f"  {t:18s} " + " / ".join(f"{row[m]:.3f}" for m in shown))
    lines.append("bars (issue 11):")
    for x in b:
        lines.append(f"  {'PASS' if x['ok'] else 'FAIL'}  {x['bar']}: {x['value']} {x['op']} {x['limit']}")
    lines.append(f"bars passed: {sum(x['ok'] for x in b)}/{len(b)}")
    txt = "\n".join(lines)
    print(txt, flush=True)
    result = {"tokens_per_view_11pct": K11, "counts": counts, "accuracy": table, "random11_spread": spread,
              "per_type": per_type, "bars": b}
    json.dump(result, open(os.path.join(out, "eval", "results.json"), "w"), indent=1)
    open(os.path.join(work, "eval.txt"), "w").write(txt + "\n")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(HERE, "work_v2"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    a.out = a.out or os.path.join(a.work, "vtc-tiny")
    torch.set_num_threads(1)
    run(a)
