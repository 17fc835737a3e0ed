"""Generator v2 (vtc-tiny v2, issue 11): document pages you have to read, scenes as in v1, dense labels,
line bindings, image-level facts for the CLS objective, and each question's real footprint.

Everything is a pure function of (split seed, index). Scenes, the crop rule and the global view are gen.py's.
Documents: text drawn with our own 5x7 bitmap font (FONT below), one glyph per 8x8 cell of the page's patch
grid (so one glyph = one crop patch; the ink at a random offset inside its cell); many distinct targets per
page ("K:47" key-value lines with distinct keys and distinct values, a table of two-digit cells, a bar chart whose
bars of distinct colours carry letter labels) plus filler words; the
global view (page box-averaged by 2 or 3) blurs glyphs to 2-4 px, which is the point: the answer must be read
in the crops. Stamps and logos are a minority. Footprints are page-patch indices (8 x 8 patches of the page,
`row * (12 * cols) + col`), so "small target" is defined by what the answer really covers.
"""
import numpy as np

import gen
from gen import IMG, GRID, DOC_SHAPES, STAMP_COLORS, STAMP_RGB, box_down, crop_grid, doc_views  # noqa: F401

# ------------------------------------------------------------------ font (our own, 5 columns x 7 rows)
# Each glyph: 7 rows of 5 bits, most significant bit = leftmost pixel.
_FONT_ROWS = {
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "J": "00111 00010 00010 00010 00010 10010 01100", "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111", "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    ":": "00000 01100 01100 00000 01100 01100 00000",
}
# I and O are left out: at 5x7 they read as 1 and 0.
CHARS = sorted(_FONT_ROWS)
FONT = {c: np.array([[b == "1" for b in row] for row in rows.split()], bool) for c, rows in _FONT_ROWS.items()}
GW, GH = 8, 8  # glyph cell = one 8x8 patch: text lines are laid on the patch grid (5x7 ink inside the cell)
LETTERS = [c for c in CHARS if c.isalpha()]           # 24 keys / labels
VALUES = [f"{v}" for v in range(10, 100)]             # 90 two-digit values

# ------------------------------------------------------------------ dense classes (v2)
# scene classes as v1 (0 background, 18 objects), then paper, one class per glyph, generic text (global view
# only: glyphs there are too small to tell apart), table rule, bar, axis, stamp x 3, logo.
DOC_CLASSES = ["paper"] + [f"glyph_{c}" for c in CHARS] + ["text", "table_rule", "bar", "axis",
                                                           "stamp_red", "stamp_green", "stamp_blue", "logo"]
CLASSES = gen.SCENE_CLASSES + DOC_CLASSES
NC = len(CLASSES)
D0 = len(gen.SCENE_CLASSES)
DC = {n: D0 + i for i, n in enumerate(DOC_CLASSES)}
GLYPH0 = DC["glyph_" + CHARS[0]]
BG_CLASSES = (0, D0)
CELL_KEYS = [f"r{i}c{j}" for i in range(1, 5) for j in range(1, 4)]   # table cells bind to their (row, column)
NKEY, NVAL = len(LETTERS) + len(CELL_KEYS) + 1, len(VALUES) + 1   # binding heads: index 0 = none
BAR_COLORS = {"blue": [70, 110, 160], "green": [60, 150, 80], "brown": [150, 90, 60], "purple": [130, 70, 160]}
NFACT = NC + len(LETTERS)                              # CLS facts: classes present, then keys readable
SMALL_MAX = 4                                          # a target is small when it covers <= 4 patches


def patch_labels(lab, thr=0.09, grid=GRID):
    """As gen.patch_labels with the v2 classes: the most frequent non-background class covering >= thr of the
    patch, else the page's background class."""
    H, W = lab.shape
    ph, pw = H // grid, W // grid
    pid = (np.arange(H)[:, None] // ph) * grid + (np.arange(W)[None, :] // pw)
    cnt = np.bincount((pid * NC + lab).ravel(), minlength=grid * grid * NC).reshape(grid * grid, NC)
    bgc = 0 if cnt[:, 0].sum() >= cnt[:, D0].sum() else D0
    cnt[:, list(BG_CLASSES)] = 0
    best = cnt.argmax(1)
    ok = cnt[np.arange(grid * grid), best] >= thr * ph * pw
    return np.where(ok, best, bgc).astype(np.int64)


def patch_binding(ids, grid=GRID, min_px=3):
    """ids: HxW int map of a line/cell id (-1 none) -> per patch the id with the most pixels (>= min_px), else -1."""
    H, W = ids.shape
    ph, pw = H // grid, W // grid
    out = np.full(grid * grid, -1, np.int64)
    pid = (np.arange(H)[:, None] // ph) * grid + (np.arange(W)[None, :] // pw)
    m = ids >= 0
    if not m.any():
        return out
    n = int(ids.max()) + 1
    cnt = np.bincount((pid[m] * n + ids[m]).ravel(), minlength=grid * grid * n).reshape(grid * grid, n)
    best = cnt.argmax(1)
    ok = cnt[np.arange(grid * grid), best] >= min_px
    out[ok] = best[ok]
    return out


def facts(pl, keys):
    """Image-level multi-label target of the CLS head: which (non-background) classes occur, which keys can be read."""
    f = np.zeros(NFACT, np.float32)
    f[np.unique(pl)] = 1
    f[list(BG_CLASSES)] = 0
    for k in keys:
        f[NC + LETTERS.index(k)] = 1
    return f


# ------------------------------------------------------------------ scenes (v1 images, v2 labels)
def scene(seed, idx):
    """v1's scene (same pixels and questions, plus each question's target_ids) with v2 labels:
    (img, patch labels [144], key [144], value [144], facts [NFACT], questions)."""
    img, pl, objs, qs = gen.scene(seed, idx)  # scene classes keep their indices in v2
    none = np.zeros(GRID * GRID, np.int64)
    return img, pl, none, none, facts(pl, []), qs


# ------------------------------------------------------------------ documents
def document(seed, idx):
    """Returns dict(page, grid, views labels: pl [V,144], key [V,144], val [V,144], facts [V,NFACT], questions).
    Views are crops row-major then the global view (gen.doc_views)."""
    rng = np.random.default_rng([seed, 11, idx])
    r, c = DOC_SHAPES[int(rng.integers(len(DOC_SHAPES)))]
    H, W = r * IMG, c * IMG
    paper = np.clip(np.array([246, 244, 238]) + rng.normal(0, 5, 3), 225, 255)
    img = np.ones((H, W, 3)) * paper
    img += rng.normal(0, 2.0, (H, W, 1))  # paper grain
    lab = np.full((H, W), DC["paper"], np.int64)
    line_id = np.full((H, W), -1, np.int64)   # key-value line or table cell id, for the binding labels
    occ = np.zeros((H, W), bool)
    m = 6
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    targets = {}  # name -> boolean HxW ink mask, for footprints

    def place(w, h, tries=120):
        for _ in range(tries):
            x0 = int(rng.integers(m, max(m + 1, W - m - w + 1)))
            y0 = int(rng.integers(m, max(m + 1, H - m - h + 1)))
            if x0 + w <= W - m and y0 + h <= H - m and not occ[max(0, y0 - 2):y0 + h + 2, max(0, x0 - 3):x0 + w + 3].any():
                occ[y0:y0 + h, x0:x0 + w] = True
                return x0, y0
        return None

    ink = float(rng.uniform(15, 70))

    def place_text(n, rows=1):
        """A free run of n glyph cells (x rows) on the 8-px patch grid; -> top-left pixel or None."""
        return place_grid(n * GW, rows * GH)

    def place_grid(w, h, tries=120):
        for _ in range(tries):
            x0 = GW * int(rng.integers(1, max(2, (W - w) // GW)))
            y0 = GH * int(rng.integers(1, max(2, (H - h) // GH)))
            if x0 + w <= W - 4 and y0 + h <= H - 4 and not occ[max(0, y0 - GH):y0 + h + GH, max(0, x0 - GW):x0 + w + GW].any():
                occ[y0:y0 + h, x0:x0 + w] = True
                return x0, y0
        return None

    def text(s, x0, y0, lid=-1):
        """Draws string s one glyph per 8x8 cell from (x0, y0) (cell-aligned); the 5x7 ink sits at a random
        offset inside the cell, the same for the whole string. Returns the ink mask."""
        mk = np.zeros((H, W), bool)
        ox, oy = int(rng.integers(0, GW - 4)), int(rng.integers(0, GH - 6))
        for k, ch in enumerate(s):
            g = FONT[ch]
            ys, xs = np.nonzero(g)
            py, px = y0 + oy + ys, x0 + k * GW + ox + xs
            img[py, px] = ink + rng.normal(0, 6)
            lab[py, px] = DC["glyph_" + ch]
            mk[py, px] = True
        if lid >= 0:
            line_id[mk] = lid
        return mk

    values = list(rng.permutation(VALUES))
    letters = list(rng.permutation(LETTERS))
    bind_key, bind_val = [], []  # per line id: key index (0 none), value index (0 none)
    qs = []
    info = {}

    def add(q, a, t, mask):
        qs.append(dict(question=q, answer=a, type=t, mask=mask))

    # table of two-digit cells (55%): rows x cols, "what is in row i column j"; cells are 3 x 2 patches, the
    # two digits in the cell's lower right 2 x 1 patches, rules on the patch borders
    if rng.random() < 0.55:
        rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 4))
        cw, rh = 3 * GW, 2 * GH
        pos = place_grid(cols * cw + 1, rows * rh + 1)
        if pos:
            x0, y0 = pos
            rule = float(rng.uniform(40, 110))
            for k in range(rows + 1):
                img[y0 + k * rh, x0:x0 + cols * cw + 1] = rule
                lab[y0 + k * rh, x0:x0 + cols * cw + 1] = DC["table_rule"]
            for k in range(cols + 1):
                img[y0:y0 + rows * rh + 1, x0 + k * cw] = rule
                lab[y0:y0 + rows * rh + 1, x0 + k * cw] = DC["table_rule"]
            tmask = lab == DC["table_rule"]
            for i in range(rows):
                for j in range(cols):
                    v = values.pop()
                    lid = len(bind_key)
                    bind_key.append(1 + len(LETTERS) + CELL_KEYS.index(f"r{i + 1}c{j + 1}"))
                    bind_val.append(1 + VALUES.index(v))
                    mk = text(v, x0 + j * cw + GW, y0 + i * rh + GH, lid)
                    add(f"what is in row {i + 1} column {j + 1}", v, "doc_cell", mk)
            add("how many rows does the table have", gen.NUMS[rows], "doc_rows", tmask.copy())
    # key-value lines "K:47": the bulk of the page's targets
    n_lines = int(rng.integers(5, 11)) * (r * c) // 4
    keyed = []
    for _ in range(n_lines):
        pos = place_text(4)
        if pos is None:
            break
        k, v = letters.pop(), values.pop()
        lid = len(bind_key)
        bind_key.append(1 + LETTERS.index(k))
        bind_val.append(1 + VALUES.index(v))
        mk = text(f"{k}:{v}", pos[0], pos[1], lid)
        keyed.append(k)
        add(f"what is the value of {k.lower()}", v, "doc_value", mk)
        add(f"which key has the value {v}", k.lower(), "doc_key", mk)
    # bar chart (40%): 3 bars of distinct colours, a letter under each; "what is the label of the green bar".
    # The bar and its letter share a binding (key = the letter), as a key and its value do.
    if rng.random() < 0.4 and len(letters) >= 3:
        bw, ch = GW, GH * int(rng.integers(3, 6))
        cwid = 3 * 2 * GW
        pos = place_grid(cwid, ch + GH + 2)
        if pos:
            x0, y0 = pos
            img[y0 + ch - 1, x0:x0 + cwid] = 40
            lab[y0 + ch - 1, x0:x0 + cwid] = DC["axis"]
            hs = rng.uniform(0.3, 0.95, 3)
            names = list(rng.permutation(sorted(BAR_COLORS)))[:3]
            labels = [letters.pop() for _ in range(3)]
            for k in range(3):
                bh = int(hs[k] * (ch - 3))
                bx = x0 + k * 2 * GW
                lid = len(bind_key)
                bind_key.append(1 + LETTERS.index(labels[k]))
                bind_val.append(0)
                img[y0 + ch - 1 - bh:y0 + ch - 1, bx:bx + bw] = BAR_COLORS[names[k]]
                lab[y0 + ch - 1 - bh:y0 + ch - 1, bx:bx + bw] = DC["bar"]
                line_id[y0 + ch - 1 - bh:y0 + ch - 1, bx:bx + bw] = lid
                bar = np.zeros((H, W), bool)
                bar[y0 + ch - 1 - bh:y0 + ch - 1, bx:bx + bw] = True
                lm = text(labels[k], bx, y0 + ch, lid)
                add(f"what is the label of the {names[k]} bar", labels[k].lower(), "doc_bar_label", bar | lm)
    # filler words (not key-value lines): reading the right line matters
    for _ in range(int(rng.integers(3, 9)) * (r * c) // 4):
        w = "".join(rng.choice(LETTERS, int(rng.integers(2, 5))))
        pos = place_text(len(w))
        if pos:
            text(w, *pos)
    # logo (25%) and stamp (25%): a coloured minority
    info["logo"] = False
    if rng.random() < 0.25:
        s = int(rng.integers(10, 14))
        pos = place(s, s)
        if pos:
            mk = gen._shape_mask(int(rng.integers(3)), pos[0] + s / 2, pos[1] + s / 2, s, yy, xx)
            img[mk] = [150, 60, 180] if rng.random() < 0.5 else [235, 130, 30]
            lab[mk] = DC["logo"]
            info["logo"] = mk
    info["stamp"] = None
    if rng.random() < 0.25:
        d = int(rng.integers(16, 24))
        pos = place(d, d)
        if pos:
            sc = int(rng.integers(3))
            rr = np.sqrt((xx - pos[0] - d / 2) ** 2 + (yy - pos[1] - d / 2) ** 2)
            mk = ((rr <= d / 2) & (rr >= d / 2 - 3)) | (rr <= d / 5)
            img[mk] = STAMP_RGB[sc]
            lab[mk] = DC["stamp_" + STAMP_COLORS[sc]]
            info["stamp"] = (sc, mk)
            add("what color is the stamp", STAMP_COLORS[sc], "doc_stamp_color", mk)
    add("is there a stamp", "yes" if info["stamp"] else "no", "doc_stamp_exists", info["stamp"][1] if info["stamp"] else None)
    add("is there a logo", "yes" if info["logo"] is not False else "no", "doc_logo", info["logo"] if info["logo"] is not False else None)
    page = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    # labels per view: crops read glyphs and bindings; the global view sees only "text"
    bk, bv = np.array([0] + bind_key, np.int64), np.array([0] + bind_val, np.int64)
    pls, keys, vals, fts = [], [], [], []
    for i in range(r):
        for j in range(c):
            sl = (slice(i * IMG, (i + 1) * IMG), slice(j * IMG, (j + 1) * IMG))
            pl = patch_labels(lab[sl])
            b = patch_binding(line_id[sl]) + 1
            pls.append(pl)
            keys.append(bk[b])
            vals.append(bv[b])
            fts.append(facts(pl, [LETTERS[x - 1] for x in np.unique(bk[b]) if 0 < x <= len(LETTERS)]))
    glab = np.where((lab >= GLYPH0) & (lab < GLYPH0 + len(CHARS)), DC["text"], lab)
    gpl = patch_labels(glab)
    pls.append(gpl)
    keys.append(np.zeros(GRID * GRID, np.int64))
    vals.append(np.zeros(GRID * GRID, np.int64))
    fts.append(facts(gpl, []))

    # footprints: page patches (8 x 8 px) that the target's ink touches
    for q in qs:
        mk = q.pop("mask")
        if mk is None or not np.any(mk):
            ids = []
        else:
            ids = np.nonzero(mk.reshape(r * GRID, 8, c * GRID, 8).any(axis=(1, 3)).ravel())[0].tolist()
        q["target_ids"] = [int(x) for x in ids]
        q["target_patches"] = len(ids)
        q["small"] = bool(0 < len(ids) <= SMALL_MAX)
    return dict(page=page, grid=(r, c), pl=np.stack(pls), key=np.stack(keys), val=np.stack(vals),
                facts=np.stack(fts), questions=qs, keys_on_page=keyed)


def view_targets(ids, view, grid_rc):
    """Page-patch footprint -> patch indices (0..143) of one view. Scenes: grid_rc None, ids are view patches.
    Crop (i, j): the page patches inside it. Global view: page patch (pr, pc) -> (pr // rows, pc // cols)."""
    if grid_rc is None:
        return sorted(ids)
    r, c = grid_rc
    out = set()
    for p in ids:
        pr, pc = divmod(p, c * GRID)
        if view == r * c:
            out.add((pr // r) * GRID + pc // c)
        elif (pr // GRID, pc // GRID) == divmod(view, c):
            out.add((pr % GRID) * GRID + pc % GRID)
    return sorted(out)


def answer_vocab():
    return sorted(set(gen.answer_vocab()) | {x.lower() for x in LETTERS} | set(VALUES))


def question_words():
    """Every word of the v2 question templates (scenes from v1, documents above)."""
    ws = set()
    for i in range(2000):
        for q in gen.scene(1, i)[3]:
            ws.update(q["question"].lower().split())
    ws.update("what is in row column how many rows does the table have the value of which key has label bar "
              "color stamp is there a logo".split())
    ws.update(BAR_COLORS)
    ws.update(str(k) for k in range(1, 5))
    return ws


if __name__ == "__main__":
    import sys
    import time
    from PIL import Image
    t = time.time()
    for i in range(40):
        document(1, i)
    print("doc ms", (time.time() - t) / 40 * 1000)
    d = document(1, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(d["grid"], d["pl"].shape, len(d["questions"]))
    for q in d["questions"][:12]:
        print(q)
    if len(sys.argv) > 2:
        Image.fromarray(d["page"]).resize((d["page"].shape[1] * 4, d["page"].shape[0] * 4), Image.NEAREST).save(sys.argv[2])
        Image.fromarray(doc_views(d["page"])[0][-1]).resize((384, 384), Image.NEAREST).save(sys.argv[2].replace(".png", "_global.png"))
