"""vtc-tiny: the whole pipeline in one command (npm run model:train).

Stages (each checkpoints to models/training/work/ and is skipped on resume when done):
  1. evalset   write the held-out set (seed 2) to models/vtc-tiny/eval/
  1b. tokenizer word-level vocabulary -> work/tokenizer.json (copied to vtc-tiny at export)
  2. stage1    encoder with dense supervision on freshly drawn scenes and document views (seed 1)
  3. cache     frozen-encoder features of a fixed pool (seed 1, indices disjoint from stage 1 draws)
  4. stage2    projector + decoder, 8 questions per image, half the batches TokenFLEX-pooled to n x n
  5. export    ONNX files, manifest, tokenizer, reference inputs/outputs
  6. parity    node models/training/parity.mjs: onnxruntime-node vs PyTorch outputs (tolerance 1e-4)
  7. eval      held-out accuracy: all tokens, random 11%, CLS-attention top 11%

Usage: /usr/bin/python3 models/training/train_all.py [--minutes 100] [--threads 1] [--tiny]
The time budget (--minutes or VTC_TRAIN_MINUTES) is split: stage 1 gets 45%, stage 2 gets 45%; the rest is
for the pool, the cache, the export and the evaluation. Training stages are time-budgeted and resume from
their last checkpoint (elapsed time is stored with the weights)."""
import argparse
import json
import math
import os
import pickle
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402
from model import (DF, MEAN, MAX_T, STD, Decoder, Encoder, Projector, pool_sources, tokenflex_pool,  # noqa: E402
                   view_pos)
import tok  # noqa: E402

WORK = os.path.join(HERE, "work")
OUT = os.path.normpath(os.path.join(HERE, "..", "vtc-tiny"))
T0 = time.time()


def log(*a):
    print(time.strftime("%H:%M:%S"), f"[{(time.time() - T0) / 60:6.1f} min]", *a, flush=True)


def done(name):
    return os.path.exists(os.path.join(WORK, name + ".done"))


def mark(name):
    open(os.path.join(WORK, name + ".done"), "w").write(time.strftime("%c"))


# to_tensor, make_opt, lr_at, save_ckpt: common.py, shared with v2 (same code, same MEAN/STD).
from common import encode_questions, lr_at, make_opt, save_ckpt, to_tensor  # noqa: E402,F401


# ------------------------------------------------------------------------------------------ stage 1
def doc_views_labels(seed, idx):
    page, lab, rc, pls, qs = gen.document(seed, idx)
    views, _ = gen.doc_views(page)
    return views, pls


def stage1(args, dev):
    path = os.path.join(WORK, "stage1.pt")
    enc = Encoder().to(dev)
    opt = make_opt(list(enc.parameters()), 1.5e-3)
    st = dict(step=0, elapsed=0.0)
    if os.path.exists(path):
        ck = torch.load(path, map_location=dev)
        enc.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        st = ck["state"]
        log(f"stage1: resumed at step {st['step']} ({st['elapsed'] / 60:.1f} min done)")
    budget = args.stage1_min * 60
    bs_s, docs_per = (48, 3) if not args.tiny else (8, 1)
    wts = torch.ones(gen.NC, device=dev) * 3.0
    wts[list(gen.BG_CLASSES)] = 1.0
    enc.train()
    last_ck, t_start, el0 = time.time(), time.time(), st["elapsed"]
    meter = []
    while True:
        el = el0 + time.time() - t_start
        if el >= budget:
            break
        step = st["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, el / budget, 1.5e-3, 200)
        imgs, labs = [], []
        for k in range(bs_s):
            im, pl, _, _ = gen.scene(1, 10_000_000 + step * bs_s + k)
            imgs.append(im)
            labs.append(pl)
        for k in range(docs_per):
            views, pls = doc_views_labels(1, 10_000_000 + step * docs_per + k)
            sel = np.random.default_rng([7, step, k]).choice(len(views), 4, replace=False)
            sel[0] = len(views) - 1  # always the global view
            imgs += [views[i] for i in sel]
            labs += [pls[i] for i in sel]
        x = to_tensor(imgs, dev)
        y = torch.from_numpy(np.stack(labs)).to(dev)
        _, logits, pres, _ = enc(x)
        pl_logits = logits[:, 1:]
        loss_d = F.cross_entropy(pl_logits.reshape(-1, gen.NC), y.reshape(-1), weight=wts)
        tgt = torch.zeros(len(imgs), gen.NC, device=dev)
        tgt.scatter_(1, y, 1.0)
        tgt[:, list(gen.BG_CLASSES)] = 0
        loss_p = F.binary_cross_entropy_with_logits(pres, tgt)
        loss = loss_d + 0.5 * loss_p
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            pred = pl_logits.argmax(-1)
            obj = ~((y == 0) | (y == gen.D0))
            meter.append((loss.item(), (pred[obj] == y[obj]).float().mean().item(), (pred[~obj] == y[~obj]).float().mean().item()))
        st["step"] += 1
        if st["step"] % 50 == 0:
            m = np.nanmean(np.array(meter), 0)
            meter = []
            el = el0 + time.time() - t_start
            log(f"stage1 step {st['step']} loss {m[0]:.3f} obj-patch acc {m[1]:.3f} bg acc {m[2]:.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e} | {el / 60:.1f}/{budget / 60:.0f} min, ETA stage {(budget - el) / 60:.1f} min, "
                f"all ~{(budget - el) / 60 + args.stage2_min + 5:.0f} min")
        if time.time() - last_ck > 120:
            st["elapsed"] = el0 + time.time() - t_start
            save_ckpt(path, model=enc.state_dict(), opt=opt.state_dict(), state=st)
            last_ck = time.time()
    st["elapsed"] = el0 + time.time() - t_start
    save_ckpt(path, model=enc.state_dict(), opt=opt.state_dict(), state=st)
    mark("stage1")
    log(f"stage1 done: {st['step']} steps")


def load_encoder(dev):
    enc = Encoder().to(dev)
    enc.load_state_dict(torch.load(os.path.join(WORK, "stage1.pt"), map_location=dev)["model"])
    return enc.eval()


# ------------------------------------------------------------------------------------------ cache
@torch.no_grad()
def encode_views(enc, imgs, dev, bs=128):
    out = []
    for i in range(0, len(imgs), bs):
        f, _, _ = enc.features(to_tensor(imgs[i:i + bs], dev))
        out.append(f.half().cpu().numpy())
    return np.concatenate(out)


def cache(args, dev):
    enc = load_encoder(dev)
    ns, nd = (args.pool_scenes, args.pool_docs) if not args.tiny else (256, 32)
    t = time.time()
    feats, items = [], []  # items: (kind, view offset, grid rc or None, questions)
    off = 0
    chunk_imgs = []
    for i in range(ns):
        im, _, _, qs = gen.scene(1, i)
        chunk_imgs.append(im)
        items.append(("scene", off, None, qs))
        off += 1
        if len(chunk_imgs) == 1024:
            feats.append(encode_views(enc, chunk_imgs, dev))
            chunk_imgs = []
            el = time.time() - t
            log(f"cache scenes {i + 1}/{ns}, ETA cache {el / (i + 1) * (ns - i - 1 + 6 * nd) / 60:.1f} min")
    for i in range(nd):
        page, _, rc, _, qs = gen.document(1, i)
        views, _ = gen.doc_views(page)
        chunk_imgs += views
        items.append(("doc", off, rc, qs))
        off += len(views)
        if len(chunk_imgs) >= 1024:
            feats.append(encode_views(enc, chunk_imgs, dev))
            chunk_imgs = []
            log(f"cache docs {i + 1}/{nd}")
    if chunk_imgs:
        feats.append(encode_views(enc, chunk_imgs, dev))
    feats = np.concatenate(feats)
    np.save(os.path.join(WORK, "feats.npy"), feats)
    pickle.dump(items, open(os.path.join(WORK, "items.pkl"), "wb"))
    mark("cache")
    log(f"cache done: {feats.shape} in {(time.time() - t) / 60:.1f} min")


# ------------------------------------------------------------------------------------------ stage 2
POOL_N = [4, 6, 8, 10, 12]
_POS = {}


def view_positions(n, view, rc):
    key = (n, view, rc)
    if key not in _POS:
        _POS[key] = view_pos(pool_sources(n), view, rc)
    return _POS[key]


def build_visual(feats_list, rcs, n, dev):
    """feats_list: per image a [V,144,DF] float array (V=1 for scenes); returns vis feats [B,K,DF], pos, mask."""
    toks, poss = [], []
    for f, rc in zip(feats_list, rcs):
        x = torch.from_numpy(f.astype(np.float32)).to(dev)
        if n != 12:
            x = tokenflex_pool(x, n)
        toks.append(x.reshape(-1, DF))
        poss.append(np.concatenate([view_positions(n, v, rc) for v in range(f.shape[0])]))
    K = max(t.shape[0] for t in toks)
    B = len(toks)
    vf = torch.zeros(B, K, DF, device=dev)
    vp = torch.zeros(B, K, poss[0].shape[1], device=dev)
    vm = torch.zeros(B, K, device=dev)
    for i, (t, p) in enumerate(zip(toks, poss)):
        vf[i, :t.shape[0]] = t
        vp[i, :t.shape[0]] = torch.from_numpy(p).to(dev)
        vm[i, :t.shape[0]] = 1
    return vf, vp, vm


# encode_questions: common.py (same code; MAX_T is 24 in model.py and model_v2.py).


def stage2(args, dev):
    vocab = tok.load_vocab(os.path.join(WORK, "tokenizer.json"))
    feats = np.load(os.path.join(WORK, "feats.npy"), mmap_mode="r")
    items = pickle.load(open(os.path.join(WORK, "items.pkl"), "rb"))
    scenes = [it for it in items if it[0] == "scene"]
    docs = [it for it in items if it[0] == "doc"]
    # inverse type frequency weights
    from collections import Counter
    cnt = Counter(q["type"] for it in items for q in it[3])
    path = os.path.join(WORK, "stage2.pt")
    proj, dec = Projector().to(dev), Decoder(len(vocab)).to(dev)
    params = list(proj.parameters()) + list(dec.parameters())
    opt = make_opt(params, 1e-3)
    st = dict(step=0, elapsed=0.0)
    if os.path.exists(path):
        ck = torch.load(path, map_location=dev)
        proj.load_state_dict(ck["proj"])
        dec.load_state_dict(ck["dec"])
        opt.load_state_dict(ck["opt"])
        st = ck["state"]
        log(f"stage2: resumed at step {st['step']} ({st['elapsed'] / 60:.1f} min done)")
    budget = args.stage2_min * 60
    rng = np.random.default_rng(12345 + st["step"])
    last_ck, t_start, el0 = time.time(), time.time(), st["elapsed"]
    meter = {"scene": [], "doc": []}
    while True:
        el = el0 + time.time() - t_start
        if el >= budget:
            break
        step = st["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, el / budget, 1e-3)
        kind = "doc" if step % 3 == 2 else "scene"
        pool, nb = (docs, 6) if kind == "doc" else (scenes, 32)
        sel = rng.choice(len(pool), min(nb, len(pool)), replace=False)
        n = int(rng.choice(POOL_N)) if rng.random() < 0.5 else 12
        fl, rcs, qs, qimg = [], [], [], []
        for j, s in enumerate(sel):
            it = pool[s]
            V = 1 if it[2] is None else it[2][0] * it[2][1] + 1
            fl.append(np.asarray(feats[it[1]:it[1] + V]))
            rcs.append(it[2])
            w = np.array([1.0 / cnt[q["type"]] for q in it[3]])
            for qi in rng.choice(len(it[3]), 8, p=w / w.sum()):
                qs.append(it[3][qi])
                qimg.append(j)
        vf, vp, vm = build_visual(fl, rcs, n, dev)
        ids, tgt = encode_questions(vocab, qs)
        ids, tgt = torch.from_numpy(ids).to(dev), torch.from_numpy(tgt).to(dev)
        qimg = torch.tensor(qimg, device=dev)
        mem, bias = dec.visual(proj(vf, vp), vm)
        logits = dec.text(ids, mem, bias, qimg)
        is_ans = torch.zeros_like(tgt, dtype=torch.bool)
        is_ans[torch.arange(len(qs)), (ids != vocab["[PAD]"]).sum(1) - 2] = True
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none").view(tgt.shape)
        loss = ce[is_ans].mean() + 0.1 * ce[(tgt != -100) & ~is_ans].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            acc = (logits.argmax(-1)[is_ans] == tgt[is_ans]).float().mean().item()
        meter[kind].append((ce[is_ans].mean().item(), acc))
        st["step"] += 1
        if st["step"] % 50 == 0:
            el = el0 + time.time() - t_start
            ms = {k: np.mean(v, 0) if v else (float("nan"),) * 2 for k, v in meter.items()}
            meter = {"scene": [], "doc": []}
            log(f"stage2 step {st['step']} scene loss {ms['scene'][0]:.3f} acc {ms['scene'][1]:.3f} | doc loss "
                f"{ms['doc'][0]:.3f} acc {ms['doc'][1]:.3f} | {el / 60:.1f}/{budget / 60:.0f} min, ETA stage {(budget - el) / 60:.1f} min, "
                f"all ~{(budget - el) / 60 + 3:.0f} min")
        if time.time() - last_ck > 120:
            st["elapsed"] = el0 + time.time() - t_start
            save_ckpt(path, proj=proj.state_dict(), dec=dec.state_dict(), opt=opt.state_dict(), state=st)
            last_ck = time.time()
    st["elapsed"] = el0 + time.time() - t_start
    save_ckpt(path, proj=proj.state_dict(), dec=dec.state_dict(), opt=opt.state_dict(), state=st)
    mark("stage2")
    log(f"stage2 done: {st['step']} steps")


def parity():
    """ONNX Runtime (onnxruntime-node, the runtime the service uses) against the PyTorch reference outputs."""
    import shutil
    import subprocess
    if shutil.which("node") is None:
        log("parity: node not found, skipped (run: node models/training/parity.mjs)")
        return
    r = subprocess.run(["node", os.path.join(HERE, "parity.mjs"), "1e-4"], capture_output=True, text=True)
    log("parity:\n" + r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit("parity check failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("VTC_TRAIN_MINUTES", 100)))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("VTC_THREADS", 1)))
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny pools, minutes apply as given")
    ap.add_argument("--pool-scenes", type=int, default=20000)
    ap.add_argument("--pool-docs", type=int, default=3000)
    ap.add_argument("--eval-scenes", type=int, default=400)
    ap.add_argument("--eval-docs", type=int, default=160)
    ap.add_argument("--only", default="", help="comma-separated stages to run (default: all not yet done)")
    args = ap.parse_args()
    args.stage1_min = args.minutes * 0.45
    args.stage2_min = args.minutes * 0.45
    os.makedirs(WORK, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"device {dev}, threads {args.threads}, budget {args.minutes} min (stage1 {args.stage1_min:.1f}, stage2 {args.stage2_min:.1f})")
    import export
    import evaluate
    stages = [("evalset", lambda: export.write_evalset(args)),
              ("tokenizer", lambda: tok.write_tokenizer(os.path.join(WORK, "tokenizer.json"))),
              ("stage1", lambda: stage1(args, dev)),
              ("cache", lambda: cache(args, dev)),
              ("stage2", lambda: stage2(args, dev)),
              ("export", lambda: export.export_all(args)),
              ("parity", parity),
              ("eval", lambda: evaluate.run(args, dev))]
    only = [s for s in args.only.split(",") if s]
    for name, fn in stages:
        if only and name not in only:
            continue
        if done(name) and not only:
            log(f"{name}: already done, skipped")
            continue
        log(f"== {name}")
        fn()
        if name in ("evalset", "tokenizer", "export", "parity", "eval"):
            mark(name)
    log("all done")


if __name__ == "__main__":
    main()
