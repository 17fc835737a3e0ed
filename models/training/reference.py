"""Reference inputs and outputs of the three ONNX files, computed in PyTorch, for the parity checks
(parity.mjs here, test/models/parity.test.ts in the service), and the Python generator's global views of the
held-out documents (test/models/preprocess.test.ts)."""
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image

import gen
import tok
from common import to_tensor
from model_v2 import LOW_LAYER, SELECT_LAYER
from positions import pool_sources, tokenflex_pool, view_pos

# the encoder's ONNX outputs, in the order the export wrapper returns them
ENC_OUT = ["features", "cls"] + [f"{n}_{layer}" for layer in (LOW_LAYER, SELECT_LAYER)
                                 for n in ("hidden", "attn", "keys", "cls_query")]


def _save_bin(d, name, arr, index):
    arr = np.ascontiguousarray(arr)
    fn = name + ".bin"
    arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(d, fn))
    index[name] = dict(file=fn, shape=list(arr.shape), dtype=str(arr.dtype))


@torch.no_grad()
def write_reference(enc_export, proj, dec, vocab, out):
    """Two views (a held-out scene and the first crop of a held-out document), then projector on the scene's
    TokenFLEX 4x4 pooled tokens and on 16 kept tokens, then decoder with a padded batch of 2.
    enc_export: the encoder wrapped as exported (outputs in ENC_OUT order)."""
    d = os.path.join(out, "reference")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sc = np.array(Image.open(os.path.join(out, "eval", "scenes", "s0000.png")).convert("RGB"))
    page = np.array(Image.open(os.path.join(out, "eval", "docs", "d0000.png")).convert("RGB"))
    views, rc = gen.doc_views(page)
    x = to_tensor([sc, views[0]], "cpu")
    idx = {"vision_encoder": {"inputs": {}, "outputs": {}}, "projector": {"inputs": {}, "outputs": {}},
           "decoder": {"inputs": {}, "outputs": {}}}
    _save_bin(d, "encoder_pixel_values", x.numpy(), idx["vision_encoder"]["inputs"])
    outs = enc_export(x)
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
    qs = [json.loads(line) for line in open(os.path.join(out, "eval", "questions.jsonl"))][:2]
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
    idx["doc_views"] = doc_view_refs(d, out)
    idx["note"] = ("raw little-endian arrays; inputs/outputs keyed by file stem; ONNX names are the stem without the "
                   "'encoder_'/'projector_'/'decoder_' prefix. Tolerance 1e-4 absolute.")
    idx["questions"] = [q["question"] for q in qs]
    json.dump(idx, open(os.path.join(d, "index.json"), "w"), indent=1)


def doc_view_refs(d, out):
    """The Python generator's views of every held-out document, for the TypeScript preprocessing test: the
    global view of eval/docs/dNNNN.png as reference/doc_views/dNNNN_global.png (lossless); the crops are exact
    96x96 slices of the page (row-major). Returns the index: image -> {crop_grid, global}."""
    os.makedirs(os.path.join(d, "doc_views"), exist_ok=True)
    res = {}
    for fn in sorted(os.listdir(os.path.join(out, "eval", "docs"))):
        page = np.array(Image.open(os.path.join(out, "eval", "docs", fn)).convert("RGB"))
        views, rc = gen.doc_views(page)
        g = f"doc_views/{fn[:-4]}_global.png"
        Image.fromarray(views[-1]).save(os.path.join(d, g), optimize=True)
        res["docs/" + fn] = {"crop_grid": list(rc), "global": g}
    return res
