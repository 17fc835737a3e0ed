"""Held-out accuracy of vtc-tiny (PyTorch weights from models/training/work/, images read back from the
committed PNGs): all tokens, random 11%, CLS-attention top 11% (select layer), TokenFLEX 6x6 and 4x4.
Run alone: /usr/bin/python3 models/training/evaluate.py"""
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
from export import OUT, load_models  # noqa: E402
from model import GRID, SELECT_LAYER, pool_sources, tokenflex_pool, view_pos  # noqa: E402

N = GRID * GRID
K11 = max(1, int(N * 0.11))  # 15 tokens per view
METHODS = ["all", "random11", "cls11", "pool6", "pool4"]


def select(method, feats, attn, seed):
    """feats [V,144,DF], attn [V,145,145] -> list per view of (tokens [k,DF], sources list)."""
    out = []
    for v in range(feats.shape[0]):
        f = feats[v]
        if method == "all":
            idx = np.arange(N)
        elif method == "random11":
            idx = np.sort(np.random.default_rng([seed, v]).choice(N, K11, replace=False))
        elif method == "cls11":
            score = attn[v, 0, 1:].numpy()
            idx = np.sort(np.lexsort((np.arange(N), -score))[:K11])
        else:
            n = int(method[4:])
            out.append((tokenflex_pool(f[None], n)[0], pool_sources(n)))
            continue
        out.append((f[idx], [[i] for i in idx]))
    return out


@torch.no_grad()
def run(args=None, dev="cpu"):
    from train_all import to_tensor
    enc, proj, dec, vocab = load_models()
    inv = {i: w for w, i in vocab.items()}
    rows = [json.loads(l) for l in open(os.path.join(OUT, "eval", "questions.jsonl"))]
    by_img = defaultdict(list)
    for r in rows:
        by_img[r["image"]].append(r)
    res = {m: [] for m in METHODS}
    for k, (name, qs) in enumerate(sorted(by_img.items())):
        img = np.array(Image.open(os.path.join(OUT, "eval", name)).convert("RGB"))
        if qs[0]["kind"] == "doc":
            views, rc = gen.doc_views(img)
            rc = tuple(rc)
        else:
            views, rc = [img], None
        feats, _, out = enc.features(to_tensor(views, "cpu"))
        attn = out[SELECT_LAYER][1]
        prompts = [[vocab["[BOS]"]] + tok.encode(vocab, q["question"]) for q in qs]
        T = max(map(len, prompts))
        ids = torch.tensor([p + [vocab["[PAD]"]] * (T - len(p)) for p in prompts])
        last = torch.tensor([len(p) - 1 for p in prompts])
        for m in METHODS:
            sel = select(m, feats, attn, k)
            tf = torch.cat([t for t, _ in sel])[None]
            pos = torch.from_numpy(np.concatenate([view_pos(s, v, rc) for v, (_, s) in enumerate(sel)]))[None]
            vis = proj(tf, pos)
            logits = dec(ids, vis.expand(len(qs), -1, -1), torch.ones(len(qs), vis.shape[1]))
            pred = logits[torch.arange(len(qs)), last].argmax(-1)
            for q, p in zip(qs, pred.tolist()):
                res[m].append((q, inv[p] == q["answer"]))
    # baseline: most common answer per question type (over the held-out set itself)
    common = {t: Counter(r["answer"] for r in rows if r["type"] == t).most_common(1)[0][0] for t in {r["type"] for r in rows}}

    def acc(pairs, f):
        s = [ok for q, ok in pairs if f(q)]
        return round(float(np.mean(s)), 4) if s else None
    cols = {"scenes": lambda q: q["kind"] == "scene", "scenes_small": lambda q: q["kind"] == "scene" and q["small"],
            "docs": lambda q: q["kind"] == "doc", "docs_small": lambda q: q["kind"] == "doc" and q["small"]}
    table = {m: {c: acc(res[m], f) for c, f in cols.items()} for m in METHODS}
    table["baseline_most_common"] = {c: acc([(r, r["answer"] == common[r["type"]]) for r in rows], f) for c, f in cols.items()}
    types = sorted(common)
    per_type = {t: {m: acc(res[m], lambda q, t=t: q["type"] == t) for m in ("all", "random11", "cls11")} for t in types}
    counts = {c: sum(f(r) for r in rows) for c, f in cols.items()}
    result = {"tokens_per_view_11pct": K11, "counts": counts, "accuracy": table, "per_type": per_type}
    lines = [f"{'method':22s}" + "".join(f"{c:>14s}" for c in cols)]
    for m, row in table.items():
        lines.append(f"{m:22s}" + "".join(f"{(row[c] if row[c] is not None else float('nan')):14.3f}" for c in cols))
    lines.append("per type (all / random11 / cls11):")
    for t in types:
        lines.append(f"  {t:18s} " + " / ".join(f"{per_type[t][m]:.3f}" for m in ("all", "random11", "cls11")))
    txt = "\n".join(lines)
    print(txt, flush=True)
    json.dump(result, open(os.path.join(OUT, "eval", "results.json"), "w"), indent=1)
    open(os.path.join(HERE, "work", "eval.txt"), "w").write(txt + "\n")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    run()
