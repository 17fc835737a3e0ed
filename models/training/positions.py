"""Position features and TokenFLEX pooling of vtc-tiny's visual tokens. The TypeScript side computes the same
(models/runtime/positions.ts, compressors/tokenflex.ts; manifest `projector.positions`), so a change here is a
change of the model's contract."""
import math

import numpy as np
import torch.nn.functional as F

from gen import GRID

P = 20  # position features per token, see pos_features


def pos_features(x, y, s, g):
    """x, y: token centre in page coordinates in [0,1]; s = sqrt(size)/12; g = 1 for a scene or a document's
    global view, 0 for a document crop. Layout: [x, y, sin(pi x), cos(pi x), sin(2pi x), cos(2pi x),
    sin(4pi x), cos(4pi x), sin(8pi x), cos(8pi x), same 8 for y, s, g]."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cols = [x, y]
    for v in (x, y):
        for k in range(4):
            cols += [np.sin(2 ** k * np.pi * v), np.cos(2 ** k * np.pi * v)]
    cols += [np.broadcast_to(np.asarray(s, np.float64), x.shape), np.broadcast_to(np.asarray(float(g)), x.shape)]
    return np.stack(cols, -1).astype(np.float32)


def view_pos(sources_list, view, grid_rc):
    """Positions of tokens of one view. sources_list: list of arrays of patch indices (0..143).
    view: index of the view (crops row-major, then the global view); grid_rc: (r, c) or None for a scene."""
    cx, cy, ss = [], [], []
    for src in sources_list:
        src = np.asarray(src)
        cx.append(((src % GRID) + 0.5).mean() / GRID)
        cy.append(((src // GRID) + 0.5).mean() / GRID)
        ss.append(math.sqrt(len(src)) / GRID)
    cx, cy, ss = np.array(cx), np.array(cy), np.array(ss)
    if grid_rc is None or view == grid_rc[0] * grid_rc[1]:
        return pos_features(cx, cy, ss, 1)
    r, c = grid_rc
    i, j = divmod(view, c)
    return pos_features((j + cx) / c, (i + cy) / r, ss, 0)


def pool_sources(n):
    """TokenFLEX windows (as compressors/tokenflex.ts): patch (r, c) -> window (floor((r+.5)n/12), floor((c+.5)n/12))."""
    w = [(int((r + 0.5) * n / GRID)) * n + int((c + 0.5) * n / GRID) for r in range(GRID) for c in range(GRID)]
    w = np.array(w)
    return [np.nonzero(w == k)[0] for k in range(n * n)]


def tokenflex_pool(f, n):
    """f [B,144,D] -> [B,n*n,D]: bilinear (align_corners) resize to ceil(12/n)*n when needed, then avg pool."""
    B, N, D = f.shape
    x = f.transpose(1, 2).reshape(B, D, GRID, GRID)
    m = -(-GRID // n) * n
    if m != GRID:
        x = F.interpolate(x, size=(m, m), mode="bilinear", align_corners=True)
    x = F.avg_pool2d(x, m // n)
    return x.flatten(2).transpose(1, 2)
