"""vtc-tiny v2 (issue 11): the whole pipeline in one command (npm run model:train passes --out models/vtc-tiny).

  /usr/bin/python3 models/training/train_v2.py [--minutes 100] [--threads 1] [--work DIR] [--out DIR] [--tiny]

Stages (each writes WORK/<stage>.done and is skipped on resume; training stages checkpoint every 2 minutes with
their elapsed time, so an interrupted run resumes where it stopped and keeps its time budget):
  evalset    held-out set (seed 2) -> OUT/eval (scenes 400 x 4, documents 240 x 6 questions)
  tokenizer  word-level vocabulary (question templates + answers) -> WORK/tokenizer.json
  stage1     encoder, dense supervision on freshly drawn scenes and document views (seed 1)  [35% of the budget]
  cache      frozen select-layer features of a fixed pool (seed 1, indices disjoint from stage 1's)
  stage2     projector + decoder on the cache with per-view token drops (stage2_v2.py)          [55%]
  export     ONNX, manifest, tokenizer, reference in/out -> OUT (export_v2.py)
  parity     onnxruntime-node vs PyTorch on OUT/reference (parity.mjs)
  eval       held-out accuracy, reference rows and the issue-11 bars (evaluate_v2.py)
WORK defaults to models/training/work_v2 (git-ignored); OUT defaults to WORK/vtc-tiny, so nothing replaces
models/vtc-tiny until you pass --out models/vtc-tiny. Seeds: data (1 train, 2 held-out), torch 0, stage 2 12345."""
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
import gen  # noqa: E402
import gen_v2  # noqa: E402
import tok  # noqa: E402
from common import lr_at, make_opt, save_ckpt, to_tensor  # noqa: E402
from model_v2 import EncoderV2  # noqa: E402

T0 = time.time()


def log(*a):
    print(time.strftime("%H:%M:%S"), f"[{(time.time() - T0) / 60:6.1f} min]", *a, flush=True)


# ------------------------------------------------------------------------------------------ stage 1
def doc_sample(seed, idx, rng, n_views):
    """n_views views of one document (always the global view), with their v2 labels."""
    d = gen_v2.document(seed, idx)
    views, _ = gen.doc_views(d["page"])
    sel = rng.choice(len(views), min(n_views, len(views)), replace=False)
    sel[0] = len(views) - 1
    return [views[i] for i in sel], d["pl"][sel], d["key"][sel], d["val"][sel], d["facts"][sel]


def stage1(args, dev):
    path = os.path.join(args.work, "stage1.pt")
    enc = EncoderV2().to(dev)
    opt = make_opt(list(enc.parameters()), 1.5e-3)
    st = dict(step=0, elapsed=0.0)
    if os.path.exists(path):
        ck = torch.load(path, map_location=dev)
        enc.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        st = ck["state"]
        log(f"stage1: resumed at step {st['step']} ({st['elapsed'] / 60:.1f} min done)")
    budget = args.stage1_min * 60
    bs_s, docs_per = (24, 8) if not args.tiny else (4, 2)
    wts = torch.ones(gen_v2.NC, device=dev) * 3.0
    wts[list(gen_v2.BG_CLASSES)] = 1.0
    bind_w = torch.ones(gen_v2.NVAL, device=dev)
    bind_w[0] = 0.2
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
        imgs, pls, keys, vals, fts = [], [], [], [], []
        for k in range(bs_s):
            im, pl, ky, vl, ft, _ = gen_v2.scene(1, 10_000_000 + step * bs_s + k)
            for a, b in ((imgs, im), (pls, pl), (keys, ky), (vals, vl), (fts, ft)):
                a.append(b)
        rng = np.random.default_rng([7, step])
        for k in range(docs_per):
            v, pl, ky, vl, ft = doc_sample(1, 10_000_000 + step * docs_per + k, rng, 4)
            for a, b in ((imgs, v), (pls, pl), (keys, ky), (vals, vl), (fts, ft)):
                a.extend(list(b))
        x = to_tensor(imgs, dev)
        y, yk, yv = (torch.from_numpy(np.stack(a)).to(dev) for a in (pls, keys, vals))
        yf = torch.from_numpy(np.stack(fts)).to(dev)
        h, out = enc(x)
        lc, lk, lv, lf = enc.heads(h, out)
        loss_c = F.cross_entropy(lc.reshape(-1, gen_v2.NC), y.reshape(-1), weight=wts)
        loss_k = F.cross_entropy(lk.reshape(-1, gen_v2.NKEY), yk.reshape(-1), weight=bind_w[:gen_v2.NKEY])
        loss_v = F.cross_entropy(lv.reshape(-1, gen_v2.NVAL), yv.reshape(-1), weight=bind_w)
        loss_f = F.binary_cross_entropy_with_logits(lf, yf)
        loss = loss_c + 0.5 * (loss_k + loss_v) + 0.5 * loss_f
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            pred = lc.argmax(-1)
            glyph = (y >= gen_v2.GLYPH0) & (y < gen_v2.GLYPH0 + len(gen_v2.CHARS))
            obj = (y > 0) & (y < gen_v2.D0)
            bound = yv > 0
            meter.append((loss.item(), (pred[obj] == y[obj]).float().mean().item(),
                          (pred[glyph] == y[glyph]).float().mean().item(),
                          (lv.argmax(-1)[bound] == yv[bound]).float().mean().item()))
        st["step"] += 1
        if st["step"] % 25 == 0:
            m = np.nanmean(np.array(meter), 0)
            meter = []
            el = el0 + time.time() - t_start
            log(f"stage1 step {st['step']} loss {m[0]:.3f} object {m[1]:.3f} glyph {m[2]:.3f} line value {m[3]:.3f} "
                f"| {el / 60:.1f}/{budget / 60:.0f} min, ETA stage {(budget - el) / 60:.1f} min, "
                f"all ~{(budget - el) / 60 + args.stage2_min + args.rest_min:.0f} min")
        if time.time() - last_ck > 120:
            st["elapsed"] = el0 + time.time() - t_start
            save_ckpt(path, model=enc.state_dict(), opt=opt.state_dict(), state=st)
            last_ck = time.time()
    st["elapsed"] = el0 + time.time() - t_start
    save_ckpt(path, model=enc.state_dict(), opt=opt.state_dict(), state=st)
    log(f"stage1 done: {st['step']} steps")


def load_encoder(work, dev):
    enc = EncoderV2().to(dev)
    enc.load_state_dict(torch.load(os.path.join(work, "stage1.pt"), map_location=dev)["model"])
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
    """WORK/feats.npy [views,144,128] float16, WORK/bg.npy [views,144] bool (patch labelled background),
    WORK/labels.npy [views,3,144] int16: stage 1's patch class, key and value labels (stage 2's alignment loss),
    WORK/items.pkl: per image (kind, first view, crop grid or None, questions with target_ids)."""
    enc = load_encoder(args.work, dev)
    ns, nd = (args.pool_scenes, args.pool_docs) if not args.tiny else (200, 60)
    t = time.time()
    feats, bgs, labs, items, chunk = [], [], [], [], []
    off = 0

    def flush():
        feats.append(encode_views(enc, chunk, dev))
        chunk.clear()
    for i in range(ns):
        im, pl, _, _, _, qs = gen_v2.scene(1, i)
        chunk.append(im)
        bgs.append(np.isin(pl, gen_v2.BG_CLASSES)[None])
        labs.append(np.stack([pl, np.zeros_like(pl), np.zeros_like(pl)])[None])
        items.append(("scene", off, None, qs))
        off += 1
        if len(chunk) >= 1024:
            flush()
            log(f"cache scenes {i + 1}/{ns}, ETA cache {(time.time() - t) / (i + 1) * (ns - i - 1 + 12 * nd) / 60:.1f} min")
    for i in range(nd):
        d = gen_v2.document(1, i)
        views, _ = gen.doc_views(d["page"])
        chunk += views
        bgs.append(np.isin(d["pl"], gen_v2.BG_CLASSES))
        labs.append(np.stack([d["pl"], d["key"], d["val"]], 1))
        items.append(("doc", off, d["grid"], d["questions"]))
        off += len(views)
        if len(chunk) >= 1024:
            flush()
            log(f"cache docs {i + 1}/{nd}, ETA cache {(time.time() - t) / max(1, off) * 1.2 * (nd - i - 1) * 6 / 60:.1f} min")
    if chunk:
        flush()
    feats = np.concatenate(feats)
    np.save(os.path.join(args.work, "feats.npy"), feats)
    np.save(os.path.join(args.work, "bg.npy"), np.concatenate(bgs))
    np.save(os.path.join(args.work, "labels.npy"), np.concatenate(labs).astype(np.int16))
    pickle.dump(items, open(os.path.join(args.work, "items.pkl"), "wb"))
    log(f"cache done: {feats.shape} in {(time.time() - t) / 60:.1f} min")


def write_tokenizer(args):
    # CELL_KEYS ("r1c2", ...) are words only the alignment loss uses: a table cell's key, as a letter is a line's
    tok.write_tokenizer(os.path.join(args.work, "tokenizer.json"),
                        gen_v2.question_words() | set(gen_v2.answer_vocab()) | set(gen_v2.CELL_KEYS))


def parity(args):
    import shutil
    import subprocess
    if shutil.which("node") is None:
        log("parity: node not found, skipped (run: node models/training/parity.mjs 1e-4 OUT)")
        return
    r = subprocess.run(["node", os.path.join(HERE, "parity.mjs"), "1e-4", args.out], capture_output=True, text=True)
    log("parity:\n" + r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit("parity check failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("VTC_TRAIN_MINUTES", 110)))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("VTC_THREADS", 1)))
    ap.add_argument("--work", default=os.path.join(HERE, "work_v2"))
    ap.add_argument("--out", default=None, help="model folder (default WORK/vtc-tiny)")
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny batches and pools")
    ap.add_argument("--pool-scenes", type=int, default=12000)
    ap.add_argument("--pool-docs", type=int, default=4000)
    ap.add_argument("--eval-scenes", type=int, default=400)
    ap.add_argument("--eval-docs", type=int, default=240)
    ap.add_argument("--att-weight", type=float, default=0.5, help="grounding loss weight at the start of stage 2")
    ap.add_argument("--att-anneal", type=float, default=0.7, help="fraction of stage 2 over which it falls to 0")
    ap.add_argument("--align", type=float, default=1.0, help="alignment loss weight in stage 2 (0 = off)")
    ap.add_argument("--one-crop", type=float, default=0.5,
                    help="stage 2 fraction over which one-crop document steps fall from all to 10%% (0 = never)")
    ap.add_argument("--only", default="", help="comma-separated stages to run (default: all not yet done)")
    args = ap.parse_args()
    args.work = os.path.abspath(args.work)
    args.out = os.path.abspath(args.out or os.path.join(args.work, "vtc-tiny"))
    # stage 2 (the decoder learning to read) gets the larger share: stage 1 reaches its accuracies in ~20 min
    args.stage1_min, args.stage2_min = args.minutes * 0.30, args.minutes * 0.60
    args.rest_min = args.minutes * 0.1
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"device {dev}, threads {args.threads}, budget {args.minutes} min (stage1 {args.stage1_min:.1f}, "
        f"stage2 {args.stage2_min:.1f}), work {args.work}, out {args.out}")
    import evaluate_v2
    import export_v2
    import stage2_v2
    stages = [("evalset", lambda: export_v2.write_evalset(args)),
              ("tokenizer", lambda: write_tokenizer(args)),
              ("stage1", lambda: stage1(args, dev)),
              ("cache", lambda: cache(args, dev)),
              ("stage2", lambda: stage2_v2.stage2(args, dev, log)),
              ("export", lambda: export_v2.export_all(args)),
              ("parity", lambda: parity(args)),
              ("eval", lambda: evaluate_v2.run(args))]
    only = [s for s in args.only.split(",") if s]
    for name, fn in stages:
        if only and name not in only:
            continue
        marker = os.path.join(args.work, name + ".done")
        if os.path.exists(marker) and not only:
            log(f"{name}: already done, skipped")
            continue
        t = time.time()
        log(f"== {name}")
        fn()
        open(marker, "w").write(time.strftime("%c"))
        log(f"{name} took {(time.time() - t) / 60:.1f} min")
    log("all done")


if __name__ == "__main__":
    main()
