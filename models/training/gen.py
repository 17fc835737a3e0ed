"""Deterministic generator of synthetic scenes and document pages, with questions and dense labels.

Every image is a pure function of (split seed, index): rng = numpy.random.default_rng([seed, kind, index]).
Scenes are 96x96. Document pages are rendered at exactly (rows*96) x (cols*96) pixels, so the crops of the
crop rule are exact slices and the global view is an integer-factor box average (see crop_grid / global_view).
"""
import numpy as np

IMG = 96
PATCH = 8
GRID = 12
COLORS = ["red", "green", "blue", "yellow", "purple", "cyan"]
RGB = np.array([[215, 40, 40], [40, 170, 60], [45, 75, 215], [230, 205, 40], [145, 55, 185], [40, 200, 210]])
SHAPES = ["circle", "square", "triangle"]
NUMS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"]
QUADS = ["topleft", "topright", "bottomleft", "bottomright"]
# dense classes: 0 scene background, 1 + color*3 + shape (18 object classes), then document classes
DOC_CLASSES = ["paper", "text", "table_rule", "table_text", "stamp_red", "stamp_green", "stamp_blue", "bar", "axis", "logo"]
SCENE_CLASSES = ["background"] + [f"{c}_{s}" for c in COLORS for s in SHAPES]
CLASSES = SCENE_CLASSES + DOC_CLASSES
NC = len(CLASSES)
D0 = len(SCENE_CLASSES)  # index of "paper"
DC = {n: D0 + i for i, n in enumerate(DOC_CLASSES)}
BG_CLASSES = (0, D0)
STAMP_COLORS = ["red", "green", "blue"]
STAMP_RGB = np.array([[200, 35, 35], [35, 150, 55], [40, 60, 200]])
DOC_SHAPES = [(2, 2), (2, 3), (3, 2)]  # (rows, cols) of the page in 96-px units
MAX_CROPS = 6


def _rng(seed, kind, idx):
    return np.random.default_rng([seed, kind, idx])


def _shape_mask(shape, cx, cy, size, yy, xx):
    r = size / 2.0
    if shape == 0:
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == 1:
        return (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
    # upward triangle inscribed in the box
    top, bot = cy - r, cy + r
    t = (yy - top) / (2 * r)
    return (yy >= top) & (yy <= bot) & (np.abs(xx - cx) <= t * r)


def patch_labels(lab, grid=GRID, thr=0.09):
    """lab: HxW int class map; patch (i,j) covers rows i*H/grid.. ; label = the most frequent
    non-background class if it covers >= thr of the patch, else the background class of the page."""
    H, W = lab.shape
    ph, pw = H // grid, W // grid
    pid = (np.arange(H)[:, None] // ph) * grid + (np.arange(W)[None, :] // pw)
    cnt = np.bincount((pid * NC + lab).ravel(), minlength=grid * grid * NC).reshape(grid * grid, NC)
    bgc = 0 if cnt[:, 0].sum() >= cnt[:, D0].sum() else D0
    cnt2 = cnt.copy()
    cnt2[:, list(BG_CLASSES)] = 0
    best = cnt2.argmax(1)
    ok = cnt2[np.arange(grid * grid), best] >= thr * ph * pw
    return np.where(ok, best, bgc).astype(np.int64)


def _background(rng):
    h = rng.random()
    base = np.array([0.55 + 0.25 * rng.random()] * 3) * 255
    tint = rng.normal(0, 18, 3)
    base = np.clip(base * (0.5 + 0.45 * rng.random()) + tint + 30, 40, 210)
    yy, xx = np.mgrid[0:IMG, 0:IMG].astype(np.float32)
    kind = rng.integers(3)
    amp = 8 + 10 * rng.random()
    if kind == 0:
        a = rng.random() * np.pi
        per = 6 + 14 * rng.random()
        t = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / per)
    elif kind == 1:
        b = int(rng.integers(6, 17))
        t = (((xx // b) + (yy // b)) % 2) * 2 - 1.0
    else:
        t = np.sin(xx / (5 + 8 * rng.random()) + rng.random() * 6) * np.cos(yy / (5 + 8 * rng.random()) + rng.random() * 6)
    _ = h
    return base[None, None, :] + amp * t[..., None], yy, xx


def scene(seed, idx):
    """Returns (uint8 96x96x3 image, patch labels [144], list of objects, questions)."""
    rng = _rng(seed, 0, idx)
    img, yy, xx = _background(rng)
    lab = np.zeros((IMG, IMG), np.int64)
    n_large = int(rng.integers(1, 4))
    n_small = int(rng.integers(0, 4))
    if n_large + n_small < 2:
        n_small = 1
    objs, boxes = [], []
    for k in range(n_large + n_small):
        small = k >= n_large
        size = float(rng.uniform(6.5, 9.5) if small else rng.uniform(15, 27))
        for _ in range(60):
            cx, cy = rng.uniform(size / 2 + 1, IMG - size / 2 - 1, 2)
            if all(abs(cx - bx) > (size + bs) / 2 + 2 or abs(cy - by) > (size + bs) / 2 + 2 for bx, by, bs in boxes):
                break
        else:
            continue
        boxes.append((cx, cy, size))
        c, s = int(rng.integers(6)), int(rng.integers(3))
        m = _shape_mask(s, cx, cy, size, yy, xx)
        col = np.clip(RGB[c] + rng.normal(0, 10, 3), 0, 255)
        img[m] = col
        lab[m] = 1 + c * 3 + s
        objs.append(dict(color=c, shape=s, small=small, cx=cx, cy=cy, id=len(objs), mask=m))
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    pl = patch_labels(lab)
    # target patches of each object: patches whose label is its class and that it touches
    for o in objs:
        touched = o["mask"].reshape(GRID, PATCH, GRID, PATCH).any(axis=(1, 3)).ravel()
        ids = np.nonzero((pl == 1 + o["color"] * 3 + o["shape"]) & touched)[0]
        o["patches"] = int(len(ids))
        o["patch_ids"] = [int(i) for i in ids]  # the footprint itself (gen_v2 records it per question)
        del o["mask"]
    return img, pl, objs, scene_questions(objs, rng)


def _q(question, answer, qtype, objs):
    tp = int(sum(o["patches"] for o in objs))
    small = any(o["patches"] <= 4 for o in objs) if objs else False
    ids = sorted({i for o in objs for i in o["patch_ids"]})
    return dict(question=question, answer=answer, type=qtype, target_patches=tp, small=bool(small), target_ids=ids)


def scene_questions(objs, rng):
    qs = []
    sz = lambda o: "small" if o["small"] else "large"
    for o in objs:
        same_size = [p for p in objs if p["small"] == o["small"]]
        if sum(p["shape"] == o["shape"] for p in same_size) == 1:
            qs.append(_q(f"what color is the {sz(o)} {SHAPES[o['shape']]}", COLORS[o["color"]], "color", [o]))
        if sum(p["color"] == o["color"] for p in same_size) == 1:
            qs.append(_q(f"what shape is the {sz(o)} {COLORS[o['color']]} object", SHAPES[o["shape"]], "shape", [o]))
        if sum(p["color"] == o["color"] and p["shape"] == o["shape"] for p in same_size) == 1:
            if abs(o["cx"] - 48) > 5 and abs(o["cy"] - 48) > 5:
                quad = QUADS[int(o["cy"] > 48) * 2 + int(o["cx"] > 48)]
                qs.append(_q(f"where is the {sz(o)} {COLORS[o['color']]} {SHAPES[o['shape']]}", quad, "where", [o]))
    for c in range(6):
        t = [o for o in objs if o["color"] == c]
        if t or rng.random() < 0.3:
            qs.append(_q(f"how many {COLORS[c]} objects are there", NUMS[len(t)], "count_color", t))
    for s in range(3):
        t = [o for o in objs if o["shape"] == s]
        if t or rng.random() < 0.3:
            qs.append(_q(f"how many {SHAPES[s]}s are there", NUMS[len(t)], "count_shape", t))
    present = {(o["color"], o["shape"]) for o in objs}
    for o in objs:
        t = [p for p in objs if (p["color"], p["shape"]) == (o["color"], o["shape"])]
        qs.append(_q(f"is there a {COLORS[o['color']]} {SHAPES[o['shape']]}", "yes", "exists", t))
        for _ in range(10):
            c, s = int(rng.integers(6)), int(rng.integers(3))
            if (c, s) not in present:
                # near misses (same colour or same shape as a present object) make "no" informative
                qs.append(_q(f"is there a {COLORS[c]} {SHAPES[s]}", "no", "exists", []))
                break
    return qs


# ---------------------------------------------------------------- documents

def crop_grid(width, height):
    """The crop rule (also in manifest.json): among anchors (r, c) with r*c <= 6, pick the one whose
    aspect c/r is closest to width/height in |log| (aspect first), then whose area r*c*96*96 is closest
    to width*height in |log|, then fewer crops."""
    best = None
    for r in range(1, MAX_CROPS + 1):
        for c in range(1, MAX_CROPS + 1):
            if r * c > MAX_CROPS:
                continue
            key = (round(abs(np.log(width / height) - np.log(c / r)), 6),
                   round(abs(np.log(width * height / (r * c * IMG * IMG))), 6), r * c)
            if best is None or key < best[0]:
                best = (key, r, c)
    return best[1], best[2]


def box_down(img, fy, fx):
    """Integer-factor box average with round-half-up, exactly as the TypeScript side: (2*sum+n)//(2n)."""
    H, W = img.shape[:2]
    s = img.reshape(H // fy, fy, W // fx, fx, -1).astype(np.int64).sum(axis=(1, 3))
    n = fy * fx
    return ((2 * s + n) // (2 * n)).astype(np.uint8)


def doc_views(page):
    """page uint8 HxWx3 with H = r*96, W = c*96 -> list of 96x96 views: crops row-major, then global."""
    H, W = page.shape[:2]
    r, c = crop_grid(W, H)
    assert H == r * IMG and W == c * IMG, "pages are rendered at the anchor size"
    views = [page[i * IMG:(i + 1) * IMG, j * IMG:(j + 1) * IMG] for i in range(r) for j in range(c)]
    views.append(box_down(page, r, c))
    return views, (r, c)


def document(seed, idx):
    """Returns (page uint8, label map HxW, crop grid (r,c), per-view patch labels [(r*c+1),144], questions)."""
    rng = _rng(seed, 1, idx)
    r, c = DOC_SHAPES[int(rng.integers(len(DOC_SHAPES)))]
    H, W = r * IMG, c * IMG
    paper = np.clip(np.array([245, 243, 236]) + rng.normal(0, 5, 3), 225, 255)
    img = np.ones((H, W, 3)) * paper
    lab = np.full((H, W), DC["paper"], np.int64)
    mx, my = int(rng.integers(10, 22)), int(rng.integers(10, 22))
    occ = np.zeros((H, W), bool)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    def free(x0, y0, w, h):
        return x0 >= mx and y0 >= my and x0 + w <= W - mx and y0 + h <= H - my and not occ[max(0, y0 - 3):y0 + h + 3, max(0, x0 - 3):x0 + w + 3].any()

    def place(w, h, tries=80, region=None):
        for _ in range(tries):
            if region is None:
                x0 = int(rng.integers(mx, max(mx + 1, W - mx - w + 1)))
                y0 = int(rng.integers(my, max(my + 1, H - my - h + 1)))
            else:
                x0, y0 = region(w, h)
            if free(x0, y0, w, h):
                occ[y0:y0 + h, x0:x0 + w] = True
                return x0, y0
        return None

    def fill(y0, y1, x0, x1, col, cls):
        img[y0:y1, x0:x1] = col
        lab[y0:y1, x0:x1] = cls

    info = dict(rows=None, stamp=None, stamp_top=None, tallest=None, logo=False)
    parts = {}
    # logo: small filled shape in a top corner
    if rng.random() < 0.5:
        s = int(rng.integers(9, 13))
        right = rng.random() < 0.5
        pos = place(s, s, region=lambda w, h: (W - mx - w - int(rng.integers(0, 6)) if right else mx + int(rng.integers(0, 6)), my + int(rng.integers(0, 6))))
        if pos:
            x0, y0 = pos
            m = _shape_mask(int(rng.integers(3)), x0 + s / 2, y0 + s / 2, s, yy, xx)
            img[m] = [150, 60, 180] if rng.random() < 0.5 else [235, 130, 30]
            lab[m] = DC["logo"]
            info["logo"] = True
            parts["logo"] = [DC["logo"]]
    # table
    if rng.random() < 0.85:
        rows = int(rng.integers(2, 7))
        rh = int(rng.integers(11, 15))
        cols = int(rng.integers(2, 5))
        tw = int(rng.integers(int(0.45 * W), int(0.85 * W)))
        th = rows * rh + 1
        pos = place(tw, th)
        if pos:
            x0, y0 = pos
            ink = rng.integers(20, 60)
            for k in range(rows + 1):
                fill(y0 + k * rh, y0 + k * rh + 1 + (k in (0, rows)), x0, x0 + tw, ink, DC["table_rule"])
            cw = tw // cols
            for k in range(cols + 1):
                xk = min(x0 + k * cw, x0 + tw - 1)
                fill(y0, y0 + th, xk, xk + 1, ink, DC["table_rule"])
            for i in range(rows):
                for j in range(cols):
                    ln = int(rng.integers(max(3, cw // 4), max(4, cw - 5)))
                    ty = y0 + i * rh + rh // 2 - 1
                    fill(ty, ty + 3, x0 + j * cw + 3, x0 + j * cw + 3 + ln, 90, DC["table_text"])
            info["rows"] = rows
            parts["table"] = [DC["table_rule"], DC["table_text"]]
    # bar chart with 3 bars, distinct heights
    if rng.random() < 0.7:
        cw, ch = int(rng.integers(46, 70)), int(rng.integers(40, 60))
        pos = place(cw, ch)
        if pos:
            x0, y0 = pos
            fill(y0 + ch - 2, y0 + ch, x0, x0 + cw, 40, DC["axis"])
            fill(y0, y0 + ch, x0, x0 + 2, 40, DC["axis"])
            hs = rng.permutation([0.95, rng.uniform(0.25, 0.7), rng.uniform(0.25, 0.7)])
            bw = (cw - 6) // 3
            colr = [[70, 110, 160], [60, 140, 130], [110, 110, 110]][int(rng.integers(3))]
            for k in range(3):
                bh = int(hs[k] * (ch - 4))
                fill(y0 + ch - 2 - bh, y0 + ch - 2, x0 + 4 + k * bw, x0 + 4 + k * bw + bw - 3, colr, DC["bar"])
            info["tallest"] = ["left", "middle", "right"][int(np.argmax(hs))]
            parts["chart"] = [DC["bar"], DC["axis"]]
    # text paragraphs
    for _ in range(int(rng.integers(2, 6))):
        lines = int(rng.integers(2, 6))
        pw = int(rng.integers(40, max(41, W - 2 * mx)))
        pos = place(pw, lines * 7)
        if pos:
            x0, y0 = pos
            for k in range(lines):
                x, end = x0, x0 + (pw if k < lines - 1 else int(pw * rng.uniform(0.3, 1)))
                while x < end - 3:
                    wl = int(rng.integers(4, 16))
                    fill(y0 + k * 7, y0 + k * 7 + 3, x, min(x + wl, end), int(rng.integers(30, 80)), DC["text"])
                    x += wl + 3
    # stamp: coloured ring with a filled centre dot, placed last (may sit on empty space only)
    if rng.random() < 0.7:
        d = int(rng.integers(18, 27))
        pos = place(d, d)
        if pos:
            x0, y0 = pos
            sc = int(rng.integers(3))
            rr = np.sqrt((xx - x0 - d / 2) ** 2 + (yy - y0 - d / 2) ** 2)
            m = ((rr <= d / 2) & (rr >= d / 2 - 3)) | (rr <= d / 5)
            img[m] = STAMP_RGB[sc]
            lab[m] = DC["stamp_" + STAMP_COLORS[sc]]
            info["stamp"] = sc
            info["stamp_top"] = (y0 + d / 2) < H / 2
            parts["stamp"] = [DC["stamp_" + STAMP_COLORS[sc]]]
    page = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    # patch labels of each view
    pls = [patch_labels(lab[i * IMG:(i + 1) * IMG, j * IMG:(j + 1) * IMG]) for i in range(r) for j in range(c)]
    pls.append(patch_labels(lab))
    # target patches: page 8x8 patches (= crop patches) labelled with the element's classes
    page_pl = np.concatenate([p.reshape(GRID, GRID) for p in pls[:-1]], 0) if False else None
    full = np.zeros((r * GRID, c * GRID), np.int64)
    for i in range(r):
        for j in range(c):
            full[i * GRID:(i + 1) * GRID, j * GRID:(j + 1) * GRID] = pls[i * c + j].reshape(GRID, GRID)
    _ = page_pl

    def tp(name):
        return int(np.isin(full, parts.get(name, [])).sum())

    qs = []
    def add(q, a, t, name):
        n = tp(name) if name else 0
        qs.append(dict(question=q, answer=a, type=t, target_patches=n, small=bool(0 < n <= 4)))
    if info["rows"] is not None:
        add("how many rows does the table have", NUMS[info["rows"]], "doc_rows", "table")
    if info["stamp"] is not None:
        add("what color is the stamp", STAMP_COLORS[info["stamp"]], "doc_stamp_color", "stamp")
        add("is the stamp at the top or the bottom", "top" if info["stamp_top"] else "bottom", "doc_stamp_where", "stamp")
    add("is there a stamp", "yes" if info["stamp"] is not None else "no", "doc_stamp_exists", "stamp")
    if info["tallest"] is not None:
        add("which bar is the tallest", info["tallest"], "doc_tallest", "chart")
    add("is there a logo", "yes" if info["logo"] else "no", "doc_logo", "logo")
    return page, lab, (r, c), np.stack(pls), qs


def answer_vocab():
    return sorted(set(COLORS + SHAPES + NUMS + QUADS + STAMP_COLORS + ["yes", "no", "top", "bottom", "left", "middle", "right"]))


if __name__ == "__main__":
    import time
    t = time.time()
    for i in range(200):
        scene(1, i)
    print("scene ms", (time.time() - t) / 200 * 1000)
    t = time.time()
    for i in range(50):
        document(1, i)
    print("doc ms", (time.time() - t) / 50 * 1000)
    img, pl, objs, qs = scene(1, 3)
    print(objs, qs[:5])
    page, lab, g, pls, qs = document(1, 3)
    print(page.shape, g, pls.shape, qs)
