"""Payload contract, the Python side: decode vtc's payloads exactly as vLLM does, write payloads as
vLLM clients do. Run by test/io/payload-contract.test.ts with /usr/bin/python3 (Debian python3-numpy
and python3-torch).

argv: <dir>. <dir>/ours/<case>.npy and <case>.pt were written by vtc; for each, write
<dir>/decoded/<case>.npy.bin and <case>.pt.bin: the decoded tensor's C-order bytes, and
<dir>/decoded/<case>.meta: "dtype shape" as numpy and torch report them. For every float32 case also
write <dir>/decoded/<case>.f16.bin: numpy's own float32 -> float16 rounding of the decoded values, to
compare with ours. Then write <dir>/theirs/<case>.{npy,pt} (torch.save / np.save of assorted tensors,
views included) and <case>.bin (the expected C-order bytes) for vtc to decode.
"""
import io
import os
import sys

import numpy as np
import torch

MAGIC_NUMPY_PREFIX = b"\x93NUMPY"  # how vLLM tells .npy from torch.save


def vllm_load(data: bytes) -> torch.Tensor:
    # vllm/multimodal/media/image.py ImageEmbeddingMediaIO.load_bytes
    if data[:6] == MAGIC_NUMPY_PREFIX:
        return torch.from_numpy(np.load(io.BytesIO(data)))
    return torch.load(io.BytesIO(data), weights_only=True).to_dense()


def raw(t: torch.Tensor) -> bytes:
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


root = sys.argv[1]
ours = os.path.join(root, "ours")
decoded = os.path.join(root, "decoded")
theirs = os.path.join(root, "theirs")
os.makedirs(decoded, exist_ok=True)
os.makedirs(theirs, exist_ok=True)

for name in sorted(os.listdir(ours)):
    case, ext = name.rsplit(".", 1)
    with open(os.path.join(ours, name), "rb") as f:
        data = f.read()
    t = vllm_load(data)
    with open(os.path.join(decoded, f"{case}.{ext}.bin"), "wb") as f:
        f.write(raw(t))
    with open(os.path.join(decoded, f"{case}.{ext}.meta"), "w") as f:
        f.write(f"{str(t.dtype).replace('torch.', '')} {list(t.shape)}")
    if t.dtype == torch.float32:
        with open(os.path.join(decoded, f"{case}.f16.bin"), "wb") as f, np.errstate(over="ignore"):
            f.write(t.numpy().astype(np.float16).tobytes())  # overflow to inf is one of the cases

g = torch.Generator().manual_seed(7)
base = torch.randn(9, 12, generator=g)
cases = {
    "f32": base,
    "f16": base.half(),
    "bf16": base.bfloat16(),
    "f64": base.double(),
    "rows": base[2:7],  # storage offset
    "cols": base[:, 3:8],  # strided rows
    "transposed": base.t(),  # non-contiguous
    "grid": torch.tensor([[1, 4, 6]], dtype=torch.long),
    "empty": torch.zeros(0, 12),
    "grad": base.clone().requires_grad_(True),
}
for case, t in cases.items():
    buf = io.BytesIO()
    torch.save(t, buf)
    with open(os.path.join(theirs, f"{case}.pt"), "wb") as f:
        f.write(buf.getvalue())
    with open(os.path.join(theirs, f"{case}.bin"), "wb") as f:
        f.write(raw(t.detach()))
for case in ["f32", "f16", "f64", "grid", "empty"]:
    arr = cases[case].detach().numpy()
    buf = io.BytesIO()
    np.save(buf, arr)
    with open(os.path.join(theirs, f"{case}.npy"), "wb") as f:
        f.write(buf.getvalue())
buf = io.BytesIO()
np.lib.format.write_array(buf, cases["f32"].numpy(), version=(2, 0))
with open(os.path.join(theirs, "f32v2.npy"), "wb") as f:
    f.write(buf.getvalue())
with open(os.path.join(theirs, "f32v2.bin"), "wb") as f:
    f.write(raw(cases["f32"]))
buf = io.BytesIO()
np.save(buf, np.asfortranarray(cases["f32"].numpy()))
with open(os.path.join(theirs, "fortran.npy"), "wb") as f:
    f.write(buf.getvalue())
print("ok", torch.__version__, np.__version__)
