"""Word-level tokenizer written by hand in Hugging Face `tokenizer.json` format (WordLevel model, Lowercase
normalizer, Whitespace pre-tokenizer). Vocabulary: 4 specials, then every word of the question templates and
answers, sorted."""
import json
import re

import gen

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def words():
    ws = set(gen.answer_vocab())
    for i in range(3000):
        for q in gen.scene(1, i)[3]:
            ws.update(q["question"].split())
    for i in range(600):
        for q in gen.document(1, i)[4]:
            ws.update(q["question"].split())
    return sorted(ws)


def write_tokenizer(path, ws=None):
    """ws: the word list (default: v1's, from gen); gen_v2 passes its own."""
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for w in (words() if ws is None else sorted(ws)):
        vocab[w] = len(vocab)
    added = [dict(id=i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, s in enumerate(SPECIALS)]
    obj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
           "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return vocab


def load_vocab(path):
    return json.load(open(path))["model"]["vocab"]


def encode(vocab, text):
    """Same as the HF pipeline: lowercase, split on \\w+|[^\\w\\s]+, map unknown words to [UNK]."""
    return [vocab.get(w, vocab["[UNK]"]) for w in re.findall(r"\w+|[^\w\s]+", text.lower())]
