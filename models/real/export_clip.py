"""Export CLIP ViT-L/14-336 (the vision tower of LLaVA-1.5) in the layout of models/vtc-tiny, for users who have
the weights. Needs: torch, transformers (>= 4.40), and the Hugging Face checkpoints in the local cache or
network access. It cannot run on the project's CI machines (no weights there).

    python models/real/export_clip.py --out /models/llava-1.5-7b [--llava llava-hf/llava-1.5-7b-hf] [--with-llm]

Writes into --out:
  vision_encoder.onnx  input pixel_values [B,3,336,336] (CLIP normalisation, see the manifest); outputs
                       features [B,576,1024] = hidden_states[23][:,1:] (LLaVA's select_layer -2, no post-LayerNorm),
                       cls [B,1024] = hidden_states[23][:,0], and for l in (low layer, 23):
                       hidden_l [B,577,1024], attn_l [B,577,577] (head mean), keys_l [B,577,1024] (k_proj output,
                       heads concatenated), cls_query_l [B,1024] (q_proj output of the CLS token, unscaled).
                       Layer numbering as vtc-tiny: l = 1-based block index, hidden_l = hidden_states[l],
                       attn_l = attentions[l - 1].
  projector.onnx       (with --llava) LLaVA-1.5's multi_modal_projector: features [B,K,1024] -> tokens [B,K,4096]
                       (no position input: position_dim 0).
  decoder.onnx         (with --llava and --with-llm; large, external data) input_ids [B,T], visual [B,K,4096],
                       visual_mask [B,K] -> logits [B,T,V]: the language model run on [visual tokens ; text
                       embeddings] (the visual tokens as a prefix, as LLaVA does), logits of the text positions.
  tokenizer.json       (with --llava) the LLaVA tokenizer (Hugging Face tokenizers format).
  embedding.safetensors (with --llava) the LLM's token-embedding table `embed_tokens` [V, 4096] (F16): the
                       `instruction` rows of CDPruner and DART (the decoder keeps its weights as external data).
  manifest.json        models/real/clip-vit-l-14-336.manifest.json with the file names.
"""
import argparse
import json
import os
import shutil

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class VisionWrap(torch.nn.Module):
    def __init__(self, clip, select_layer, low_layer):
        super().__init__()
        self.clip, self.sel, self.low = clip, select_layer, low_layer
        self.cap = {}
        layers = clip.vision_model.encoder.layers
        for l in (low_layer, select_layer):
            att = layers[l - 1].self_attn
            att.k_proj.register_forward_hook(lambda m, i, o, l=l: self.cap.__setitem__(("k", l), o))
            att.q_proj.register_forward_hook(lambda m, i, o, l=l: self.cap.__setitem__(("q", l), o))

    def forward(self, pixel_values):
        self.cap.clear()
        out = self.clip(pixel_values=pixel_values, output_hidden_states=True, output_attentions=True)
        hs, at = out.hidden_states, out.attentions
        res = [hs[self.sel][:, 1:], hs[self.sel][:, 0]]
        for l in (self.low, self.sel):
            res += [hs[l], at[l - 1].mean(1), self.cap[("k", l)], self.cap[("q", l)][:, 0]]
        return tuple(res)


class DecoderWrap(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, visual, visual_mask):
        emb = self.lm.get_input_embeddings()(input_ids)
        x = torch.cat([visual.to(emb.dtype), emb], 1)
        mask = torch.cat([visual_mask.to(torch.long), torch.ones_like(input_ids)], 1)
        return self.lm(inputs_embeds=x, attention_mask=mask).logits[:, visual.shape[1]:].float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", default="openai/clip-vit-large-patch14-336")
    ap.add_argument("--llava", default=None, help="e.g. llava-hf/llava-1.5-7b-hf (projector, tokenizer, LLM)")
    ap.add_argument("--with-llm", action="store_true")
    args = ap.parse_args()
    from transformers import CLIPVisionModel
    man = json.load(open(os.path.join(HERE, "clip-vit-l-14-336.manifest.json")))
    enc = man["encoder"]
    os.makedirs(args.out, exist_ok=True)
    # eager attention: SDPA kernels do not return attention probabilities
    clip = CLIPVisionModel.from_pretrained(args.clip, attn_implementation="eager").eval()
    names = [enc["features"], enc["cls"]] + [enc["layers"][str(l)][k] for l in (enc["low_layer"], enc["select_layer"])
                                             for k in ("hidden", "attention", "keys", "cls_query")]
    x = torch.zeros(1, 3, 336, 336)
    with torch.no_grad():
        torch.onnx.export(VisionWrap(clip, enc["select_layer"], enc["low_layer"]), (x,),
                          os.path.join(args.out, man["files"]["vision_encoder"]), opset_version=17,
                          input_names=[enc["input"]], output_names=names,
                          dynamic_axes={n: {0: "B"} for n in [enc["input"]] + names})
    if args.llava:
        from transformers import AutoTokenizer, LlavaForConditionalGeneration
        llava = LlavaForConditionalGeneration.from_pretrained(args.llava, torch_dtype=torch.float32).eval()
        f = torch.zeros(1, 576, 1024)
        with torch.no_grad():
            torch.onnx.export(llava.multi_modal_projector, (f,), os.path.join(args.out, man["files"]["projector"]),
                              opset_version=17, input_names=["features"], output_names=["tokens"],
                              dynamic_axes={"features": {0: "B", 1: "K"}, "tokens": {0: "B", 1: "K"}})
        AutoTokenizer.from_pretrained(args.llava).backend_tokenizer.save(os.path.join(args.out, "tokenizer.json"))
        from safetensors.torch import save_file
        emb = llava.get_input_embeddings().weight.detach().to(torch.float16).contiguous()
        save_file({"embed_tokens": emb}, os.path.join(args.out, man["decoder"]["embedding"]["file"]))
        if args.with_llm:
            lm = llava.language_model if hasattr(llava, "language_model") else llava.model.language_model
            wrap = DecoderWrap(llava if not hasattr(lm, "lm_head") and hasattr(llava, "lm_head") else lm)
            ids, v, m = torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 8, 4096), torch.ones(1, 8)
            with torch.no_grad():
                torch.onnx.export(wrap, (ids, v, m), os.path.join(args.out, man["files"]["decoder"]), opset_version=17,
                                  input_names=["input_ids", "visual", "visual_mask"], output_names=["logits"],
                                  dynamic_axes={"input_ids": {0: "B", 1: "T"}, "visual": {0: "B", 1: "K"},
                                                "visual_mask": {0: "B", 1: "K"}, "logits": {0: "B", 1: "T"}})
    shutil.copy(os.path.join(HERE, "clip-vit-l-14-336.manifest.json"), os.path.join(args.out, "manifest.json"))
    print("exported to", args.out)


if __name__ == "__main__":
    main()
