"""Export of vtc-tiny v2 into args.out: manifest.json, three ONNX files (opset 17, dynamic batch / token count /
text length), tokenizer.json, eval/ (the held-out set) and reference/ (reference.py). manifest: format_version 2,
feature_dim 128 (select-layer hidden state, no class probabilities), cls = final CLS hidden state (128),
trained_pool_n 1..12, the v2 classes. The held-out set carries, per question, `target_ids` (the footprint as
page-patch indices) and `template`, and eval/background.json (per image, per view, the patch indices labelled
background, for the background-only drop rows)."""
import copy
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image

import gen
import gen_v2
import tok
from model_v2 import (DF, HEADS, LAYERS, LOW_LAYER, MAX_T, MEAN, SELECT_LAYER, STD, WIDTH, DecoderV2, EncoderV2,
                      ProjectorV2, fold_bn)
from positions import P
from reference import ENC_OUT, write_reference

EVAL_SEED = 2
KEY_ORDER = ["id", "image", "kind", "question", "answer", "type", "target_patches", "small", "crop_grid", "width",
             "height", "target_ids", "template"]
READING = ("doc_value", "doc_key", "doc_cell", "doc_bar_label")  # answers that are strings printed on the page


def _pick_scene(qs, rng, k):
    """Up to k questions of distinct types, a small-target question first when there is one."""
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


def _pick_doc(qs, rng, k):
    """Up to k questions: two non-reading questions (rows, stamp, logo: a minority, as the issue asks), then
    reading questions, one per reading type first, then at random; other questions only to fill up."""
    order = list(rng.permutation(len(qs)))
    other = [i for i in order if qs[i]["type"] not in READING]
    chosen, types = other[:2], set()
    for i in order:
        if len(chosen) < k and qs[i]["type"] in READING and qs[i]["type"] not in types:
            chosen.append(i)
            types.add(qs[i]["type"])
    for pool in ([i for i in order if qs[i]["type"] in READING], other):
        for i in pool:
            if len(chosen) < k and i not in chosen:
                chosen.append(i)
    return [qs[i] for i in chosen]


def write_evalset(args):
    d = os.path.join(args.out, "eval")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "scenes"))
    os.makedirs(os.path.join(d, "docs"))
    rows, background = [], {}
    n_s, n_d = (args.eval_scenes, args.eval_docs) if not args.tiny else (40, 20)
    for i in range(n_s):
        img, pl, _, _, _, qs = gen_v2.scene(EVAL_SEED, i)
        name = f"scenes/s{i:04d}.png"
        Image.fromarray(img).save(os.path.join(d, name), optimize=True)
        background[name] = [np.nonzero(np.isin(pl, gen_v2.BG_CLASSES))[0].tolist()]
        for q in _pick_scene(qs, np.random.default_rng([EVAL_SEED, 9, i]), 4):
            rows.append(dict(id=f"s{i:04d}-{len(rows)}", image=name, kind="scene", width=96, height=96,
                             crop_grid=None, template=q["type"], **q))
    for i in range(n_d):
        doc = gen_v2.document(EVAL_SEED, i)
        page = doc["page"]
        name = f"docs/d{i:04d}.png"
        Image.fromarray(page).save(os.path.join(d, name), optimize=True)
        background[name] = [np.nonzero(np.isin(p, gen_v2.BG_CLASSES))[0].tolist() for p in doc["pl"]]
        for q in _pick_doc(doc["questions"], np.random.default_rng([EVAL_SEED, 12, i]), 6):
            rows.append(dict(id=f"d{i:04d}-{len(rows)}", image=name, kind="doc", width=page.shape[1],
                             height=page.shape[0], crop_grid=list(doc["grid"]), template=q["type"], **q))
    with open(os.path.join(d, "questions.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in KEY_ORDER}) + "\n")
    json.dump(background, open(os.path.join(d, "background.json"), "w"))
    print(f"eval set: {sum(r['kind'] == 'scene' for r in rows)} scene and {sum(r['kind'] == 'doc' for r in rows)} doc questions")


class EncoderExport(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, pixel_values):
        f, c, out = self.enc.features(pixel_values)
        res = [f, c]
        for layer in (LOW_LAYER, SELECT_LAYER):
            res += list(out[layer])
        return tuple(res)


class DecoderExport(torch.nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, input_ids, visual, visual_mask):
        return self.dec(input_ids, visual, visual_mask)


def load_models(work, dev="cpu"):
    vocab = tok.load_vocab(os.path.join(work, "tokenizer.json"))
    enc = EncoderV2()
    enc.load_state_dict(torch.load(os.path.join(work, "stage1.pt"), map_location=dev)["model"])
    proj, dec = ProjectorV2(), DecoderV2(len(vocab))
    ck = torch.load(os.path.join(work, "stage2.pt"), map_location=dev)
    proj.load_state_dict(ck["proj"])
    dec.load_state_dict(ck["dec"])
    return enc.eval(), proj.eval(), dec.eval(), vocab


def manifest(vocab):
    """Everything the runtime needs to know about the files (models/vtc-tiny/README.md explains each field)."""
    layers = {str(layer): {"hidden": f"hidden_{layer}", "attention": f"attn_{layer}", "keys": f"keys_{layer}",
                           "cls_query": f"cls_query_{layer}"} for layer in (LOW_LAYER, SELECT_LAYER)}
    return {
        "name": "vtc-tiny", "format_version": 2,
        "files": {"vision_encoder": "vision_encoder.onnx", "projector": "projector.onnx",
                  "decoder": "decoder.onnx", "tokenizer": "tokenizer.json", "eval": "eval/questions.jsonl"},
        "image_size": 96, "patch_size": 8, "grid": [12, 12], "num_patches": 144, "has_cls": True,
        "normalize": {"scale": 1 / 255, "mean": MEAN, "std": STD,
                      "formula": "x = (pixel / 255 - mean[c]) / std[c], RGB, NCHW"},
        "encoder": {
            "input": "pixel_values", "input_shape": ["B", 3, 96, 96],
            "features": "features", "feature_dim": DF, "cls": "cls",
            "feature_layout": {"hidden": [0, WIDTH], "meaning": f"hidden state of the select layer (residual stream "
                               f"after block {SELECT_LAYER}, no LayerNorm), patch tokens in raster order"},
            "hidden_dim": WIDTH, "key_dim": WIDTH, "num_heads": HEADS, "num_layers": LAYERS,
            "select_layer": SELECT_LAYER, "low_layer": LOW_LAYER, "layers": layers,
            "layer_numbering": "1-based block index: layer l is block l of 4; hidden_l is the residual stream after block l; attn_l/keys_l/cls_query_l are computed inside block l (from the LayerNorm of the output of block l-1)",
            "classes": gen_v2.CLASSES, "background_classes": [gen_v2.CLASSES[i] for i in gen_v2.BG_CLASSES],
            "cls_meaning": "final-layer CLS hidden state after the final LayerNorm (trained on image-level multi-label facts)",
        },
        "projector": {"inputs": {"features": "features", "positions": "positions"}, "output": "tokens",
                      "position_dim": P, "width": WIDTH, "per_token": True, "pooling": "tokenflex",
                      "trained_pool_n": list(range(1, 13)),
                      "token_budget": {"min": 1, "max": 144, "per": "view"},
                      "positions": {
                          "layout": "[x, y, sin(pi x), cos(pi x), sin(2pi x), cos(2pi x), sin(4pi x), cos(4pi x), sin(8pi x), cos(8pi x), sin(pi y), cos(pi y), ..., cos(8pi y), s, g]",
                          "centre": "u = mean over the token's source patches of (col + 0.5) / 12, v = mean of (row + 0.5) / 12 (view-local, patch index = row * 12 + col)",
                          "page": "scene or global view: x = u, y = v; crop (i, j) of grid rows x cols: x = (j + u) / cols, y = (i + v) / rows",
                          "s": "sqrt(number of source patches) / 12",
                          "g": "1 for a scene image or a document's global view, 0 for a document crop"},
                      "training": "per-view random drops (independent ratios, global whole / crops sparse, crops whole / global sparse), background-only drops, TokenFLEX n = 1..12, no tokens"},
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
    enc, proj, dec, vocab = load_models(args.work)
    enc = fold_bn(copy.deepcopy(enc)).eval()
    out = args.out
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(args.work, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    json.dump(manifest(vocab), open(os.path.join(out, "manifest.json"), "w"), indent=2)
    x = torch.zeros(2, 3, 96, 96)
    torch.onnx.export(EncoderExport(enc), (x,), os.path.join(out, "vision_encoder.onnx"), opset_version=17,
                      input_names=["pixel_values"], output_names=ENC_OUT,
                      dynamic_axes={"pixel_values": {0: "B"}, **{n: {0: "B"} for n in ENC_OUT}})
    f, p = torch.zeros(2, 16, DF), torch.zeros(2, 16, P)
    torch.onnx.export(proj, (f, p), os.path.join(out, "projector.onnx"), opset_version=17,
                      input_names=["features", "positions"], output_names=["tokens"],
                      dynamic_axes={"features": {0: "B", 1: "K"}, "positions": {0: "B", 1: "K"}, "tokens": {0: "B", 1: "K"}})
    ids, v, m = torch.ones(2, 5, dtype=torch.long), torch.zeros(2, 16, WIDTH), torch.ones(2, 16)
    torch.onnx.export(DecoderExport(dec), (ids, v, m), os.path.join(out, "decoder.onnx"), opset_version=17,
                      input_names=["input_ids", "visual", "visual_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "B", 1: "T"}, "visual": {0: "B", 1: "K"},
                                    "visual_mask": {0: "B", 1: "K"}, "logits": {0: "B", 1: "T"}})
    write_reference(EncoderExport(enc), proj, dec, vocab, out)
    sizes = {fn: os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out) if fn.endswith(".onnx")}
    print("exported to", out, {k: f"{s / 1e6:.2f} MB" for k, s in sizes.items()}, f"total {sum(sizes.values()) / 1e6:.2f} MB")
