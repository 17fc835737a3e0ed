"""Export of vtc-tiny: held-out set, ONNX files (opset 17, dynamic batch / token count / text length),
manifest.json, tokenizer.json and reference inputs/outputs for the parity test (PyTorch outputs)."""
import copy
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image

import gen
import tok
from model import (DF, LOW_LAYER, MAX_T, MEAN, P, SELECT_LAYER, STD, WIDTH, HEADS, LAYERS, Decoder, Encoder,
                   Projector, fold_bn, pool_sources, tokenflex_pool, view_pos)

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
OUT = os.path.normpath(os.path.join(HERE, "..", "vtc-tiny"))
EVAL_SEED = 2


# ------------------------------------------------------------------------------------------ eval set
def _pick(qs, rng, k):
    order = list(rng.permutation(len(qs)))
    chosen, types = [], set()
    small = [i for i in order if qs[i]["small"]]
    if small:
        chosen.append(small[0])
        types.add(qs[small[0]]["type"])
    for i in order:
        if len(chosen) < k and i not in chosen and qs[i]["type"] not in types:
            chosen.append(i)
            types.add(qs[i]["type"])
    for i in order:
        if len(chosen) < k and i not in chosen:
            chosen.append(i)
    return [qs[i] for i in chosen]


def write_evalset(args):
    d = os.path.join(OUT, "eval")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "scenes"))
    os.makedirs(os.path.join(d, "docs"))
    rows = []
    for i in range(args.eval_scenes):
        img, _, _, qs = gen.scene(EVAL_SEED, i)
        name = f"scenes/s{i:04d}.png"
        Image.fromarray(img).save(os.path.join(d, name), optimize=True)
        for q in _pick(qs, np.random.default_rng([EVAL_SEED, 9, i]), 4):
            rows.append(dict(id=f"s{i:04d}-{len(rows)}", image=name, kind="scene", width=96, height=96,
                             crop_grid=None, **q))
    for i in range(args.eval_docs):
        page, _, rc, _, qs = gen.document(EVAL_SEED, i)
        name = f"docs/d{i:04d}.png"
        Image.fromarray(page).save(os.path.join(d, name), optimize=True)
        for q in _pick(qs, np.random.default_rng([EVAL_SEED, 10, i]), 4):
            rows.append(dict(id=f"d{i:04d}-{len(rows)}", image=name, kind="doc", width=page.shape[1],
                             height=page.shape[0], crop_grid=list(rc), **q))
    key_order = ["id", "image", "kind", "question", "answer", "type", "target_patches", "small", "crop_grid", "width", "height"]
    with open(os.path.join(d, "questions.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in key_order}) + "\n")
    print(f"eval set: {sum(r['kind'] == 'scene' for r in rows)} scene and {sum(r['kind'] == 'doc' for r in rows)} doc questions")


# ------------------------------------------------------------------------------------------ ONNX wrappers
class EncoderExport(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, pixel_values):
        f, c, out = self.enc.features(pixel_values)
        res = [f, c]
        for l in (LOW_LAYER, SELECT_LAYER):
            h, a, k, q = out[l]
            res += [h, a, k, q]
        return tuple(res)


ENC_OUT = ["features", "cls"] + [f"{n}_{l}" for l in (LOW_LAYER, SELECT_LAYER) for n in ("hidden", "attn", "keys", "cls_query")]


class DecoderExport(torch.nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, input_ids, visual, visual_mask):
        return self.dec(input_ids, visual, visual_mask)


def load_models(dev="cpu"):
    vocab = tok.load_vocab(os.path.join(WORK, "tokenizer.json"))
    enc = Encoder()
    enc.load_state_dict(torch.load(os.path.join(WORK, "stage1.pt"), map_location=dev)["model"])
    proj, dec = Projector(), Decoder(len(vocab))
    p2 = os.path.join(WORK, "stage2.pt")
    if os.path.exists(p2):
        ck = torch.load(p2, map_location=dev)
        proj.load_state_dict(ck["proj"])
        dec.load_state_dict(ck["dec"])
    return enc.eval(), proj.eval(), dec.eval(), vocab


def _save_bin(d, name, arr, index):
    arr = np.ascontiguousarray(arr)
    fn = name + ".bin"
    arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(d, fn))
    index[name] = dict(file=fn, shape=list(arr.shape), dtype=str(arr.dtype))


def manifest(vocab):
    layers = {str(l): {"hidden": f"hidden_{l}", "attention": f"attn_{l}", "keys": f"keys_{l}",
                       "cls_query": f"cls_query_{l}"} for l in (LOW_LAYER, SELECT_LAYER)}
    return {
        "name": "vtc-tiny", "format_version": 1,
        "files": {"vision_encoder": "vision_encoder.onnx", "projector": "projector.onnx",
                  "decoder": "decoder.onnx", "tokenizer": "tokenizer.json", "eval": "eval/questions.jsonl"},
        "image_size": 96, "patch_size": 8, "grid": [12, 12], "num_patches": 144, "has_cls": True,
        "normalize": {"scale": 1 / 255, "mean": MEAN, "std": STD,
                      "formula": "x = (pixel / 255 - mean[c]) / std[c], RGB, NCHW"},
        "encoder": {
            "input": "pixel_values", "input_shape": ["B", 3, 96, 96],
            "features": "features", "feature_dim": DF, "cls": "cls",
            "feature_layout": {"hidden": [0, WIDTH], "class_probs": [WIDTH, DF],
                               "meaning": "final-layer hidden state after the final LayerNorm, then softmax of the dense head over classes"},
            "hidden_dim": WIDTH, "key_dim": WIDTH, "num_heads": HEADS, "num_layers": LAYERS,
            "select_layer": SELECT_LAYER, "low_layer": LOW_LAYER, "layers": layers,
            "layer_numbering": "1-based block index: layer l is block l of 4; hidden_l is the residual stream after block l; attn_l/keys_l/cls_query_l are computed inside block l (from the LayerNorm of the output of block l-1)",
            "classes": gen.CLASSES, "background_classes": [gen.CLASSES[i] for i in gen.BG_CLASSES],
        },
        "projector": {"inputs": {"features": "features", "positions": "positions"}, "output": "tokens",
                      "position_dim": P, "width": WIDTH, "per_token": True, "pooling": "tokenflex",
                      "trained_pool_n": [4, 6, 8, 10, 12],
                      "token_budget": {"min": 1, "max": 144, "per": "view"},
                      "positions": {
                          "layout": "[x, y, sin(pi x), cos(pi x), sin(2pi x), cos(2pi x), sin(4pi x), cos(4pi x), sin(8pi x), cos(8pi x), sin(pi y), cos(pi y), ..., cos(8pi y), s, g]",
                          "centre": "u = mean over the token's source patches of (col + 0.5) / 12, v = mean of (row + 0.5) / 12 (view-local, patch index = row * 12 + col)",
                          "page": "scene or global view: x = u, y = v; crop (i, j) of grid rows x cols: x = (j + u) / cols, y = (i + v) / rows",
                          "s": "sqrt(number of source patches) / 12",
                          "g": "1 for a scene image or a document's global view, 0 for a document crop"}},
        "decoder": {"inputs": {"input_ids": "input_ids", "visual": "visual", "visual_mask": "visual_mask"},
                    "output": "logits", "vocab_size": len(vocab), "embedding": {"initializer": "dec.emb.weight"}, "width": WIDTH, "max_text_len": MAX_T,
                    "pad_id": vocab["[PAD]"], "unk_id": vocab["[UNK]"], "bos_id": vocab["[BOS]"], "eos_id": vocab["[EOS]"],
                    "prompt": "[BOS] + question words", "answer": "argmax of logits at the last prompt position (one word); feeding it back gives [EOS]",
                    "visual_order": "tokens of each view concatenated, views in order crops row-major then global view"},
        "crop_rule": {
            "type": "anchor_grid", "max_crops": gen.MAX_CROPS, "crop_size": 96,
            "anchors": "all (rows, cols) with rows * cols <= 6",
            "select": "minimise |ln(W/H) - ln(cols/rows)| (rounded to 6 decimals), then |ln(W*H / (rows*cols*96*96))| (rounded to 6 decimals), then fewer crops (rows*cols), then fewer rows",
            "resize": "page resized to (cols*96) x (rows*96) when it is not that size already (eval pages always are)",
            "crops": "rows*cols slices of 96x96, row-major",
            "global_view": "box average of the resized page by integer factors (cols horizontally, rows vertically), per channel, round half up: (2*sum + n) // (2*n) with n = rows*cols",
            "views_order": "crops row-major, then the global view"},
    }


def export_all(args):
    enc, proj, dec, vocab = load_models()
    enc = fold_bn(copy.deepcopy(enc)).eval()
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(os.path.join(WORK, "tokenizer.json"), os.path.join(OUT, "tokenizer.json"))
    json.dump(manifest(vocab), open(os.path.join(OUT, "manifest.json"), "w"), indent=2)
    x = torch.zeros(2, 3, 96, 96)
    torch.onnx.export(EncoderExport(enc), (x,), os.path.join(OUT, "vision_encoder.onnx"), opset_version=17,
                      input_names=["pixel_values"], output_names=ENC_OUT,
                      dynamic_axes={"pixel_values": {0: "B"}, **{n: {0: "B"} for n in ENC_OUT}})
    f, p = torch.zeros(2, 16, DF), torch.zeros(2, 16, P)
    torch.onnx.export(proj, (f, p), os.path.join(OUT, "projector.onnx"), opset_version=17,
                      input_names=["features", "positions"], output_names=["tokens"],
                      dynamic_axes={"features": {0: "B", 1: "K"}, "positions": {0: "B", 1: "K"}, "tokens": {0: "B", 1: "K"}})
    ids, v, m = torch.ones(2, 5, dtype=torch.long), torch.zeros(2, 16, WIDTH), torch.ones(2, 16)
    torch.onnx.export(DecoderExport(dec), (ids, v, m), os.path.join(OUT, "decoder.onnx"), opset_version=17,
                      input_names=["input_ids", "visual", "visual_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "B", 1: "T"}, "visual": {0: "B", 1: "K"},
                                    "visual_mask": {0: "B", 1: "K"}, "logits": {0: "B", 1: "T"}})
    reference(enc, proj, dec, vocab)
    print("exported to", OUT)


@torch.no_grad()
def reference(enc, proj, dec, vocab):
    """Two views (a held-out scene and the first crop of a held-out document), then projector on the scene's
    TokenFLEX 4x4 pooled tokens and on 16 kept tokens, then decoder with a padded batch of 2."""
    d = os.path.join(OUT, "reference")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    from train_all import to_tensor
    sc = np.array(Image.open(os.path.join(OUT, "eval", "scenes", "s0000.png")).convert("RGB"))
    page = np.array(Image.open(os.path.join(OUT, "eval", "docs", "d0000.png")).convert("RGB"))
    views, rc = gen.doc_views(page)
    x = to_tensor([sc, views[0]], "cpu")
    idx = {"vision_encoder": {"inputs": {}, "outputs": {}}, "projector": {"inputs": {}, "outputs": {}},
           "decoder": {"inputs": {}, "outputs": {}}}
    _save_bin(d, "encoder_pixel_values", x.numpy(), idx["vision_encoder"]["inputs"])
    outs = EncoderExport(enc)(x)
    for n, o in zip(ENC_OUT, outs):
        _save_bin(d, "encoder_" + n, o.numpy(), idx["vision_encoder"]["outputs"])
    feats = outs[0]
    pooled = tokenflex_pool(feats[:1], 4)                   # 16 tokens
    keep = np.arange(0, 144, 9)                             # 16 kept tokens of the crop
    kept = feats[1:2, keep]
    pf = torch.cat([pooled, kept])
    pos = np.stack([view_pos(pool_sources(4), 0, None), view_pos([[k] for k in keep], 0, rc)])
    pp = torch.from_numpy(pos)
    _save_bin(d, "projector_features", pf.numpy(), idx["projector"]["inputs"])
    _save_bin(d, "projector_positions", pp.numpy(), idx["projector"]["inputs"])
    toks = proj(pf, pp)
    _save_bin(d, "projector_tokens", toks.numpy(), idx["projector"]["outputs"])
    qs = [l for l in map(json.loads, open(os.path.join(OUT, "eval", "questions.jsonl")))][:2]
    prompts = [[vocab["[BOS]"]] + tok.encode(vocab, q["question"]) for q in qs]
    T = max(map(len, prompts))
    ids = torch.tensor([p + [vocab["[PAD]"]] * (T - len(p)) for p in prompts])  # prompt only, [PAD] after the shorter one
    mask = torch.ones(2, 16)
    mask[1, 12:] = 0
    _save_bin(d, "decoder_input_ids", ids.numpy(), idx["decoder"]["inputs"])
    _save_bin(d, "decoder_visual", toks.numpy(), idx["decoder"]["inputs"])
    _save_bin(d, "decoder_visual_mask", mask.numpy(), idx["decoder"]["inputs"])
    logits = dec(ids, toks, mask)
    _save_bin(d, "decoder_logits", logits.numpy(), idx["decoder"]["outputs"])
    idx["doc_views"] = doc_view_refs(d)
    idx["note"] = ("raw little-endian arrays; inputs/outputs keyed by file stem; ONNX names are the stem without the "
                   "'encoder_'/'projector_'/'decoder_' prefix. Tolerance 1e-4 absolute.")
    idx["questions"] = [q["question"] for q in qs]
    json.dump(idx, open(os.path.join(d, "index.json"), "w"), indent=1)


def doc_view_refs(d):
    """The Python generator's views of every held-out document, for the TypeScript preprocessing test: the
    global view of eval/docs/dNNNN.png as reference/doc_views/dNNNN_global.png (lossless); the crops are exact
    96x96 slices of the page (row-major). Returns the index: image -> {crop_grid, global}."""
    os.makedirs(os.path.join(d, "doc_views"), exist_ok=True)
    out = {}
    for fn in sorted(os.listdir(os.path.join(OUT, "eval", "docs"))):
        page = np.array(Image.open(os.path.join(OUT, "eval", "docs", fn)).convert("RGB"))
        views, rc = gen.doc_views(page)
        g = f"doc_views/{fn[:-4]}_global.png"
        Image.fromarray(views[-1]).save(os.path.join(d, g), optimize=True)
        out["docs/" + fn] = {"crop_grid": list(rc), "global": g}
    return out
