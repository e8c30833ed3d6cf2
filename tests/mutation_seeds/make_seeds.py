#!/usr/bin/env python3
"""Writes the seed files of tests/mutation.rs (and the fuzz/ targets' seed corpora).

Small on purpose: every mutation case parses a whole seed, and the test runs 2,000+ cases per
format in CI. Run from anywhere with h5py, numpy and Pillow installed:

    python3 -m venv /tmp/seeds && /tmp/seeds/bin/pip install h5py numpy pillow
    /tmp/seeds/bin/python tests/mutation_seeds/make_seeds.py [path/to/small_group.jpg]

The image seeds are crops of shared/testdata/images/small_group.jpg. The outputs are committed;
rerunning with other library versions may change their bytes (not their content), which is fine:
the test only needs valid files of each kind.
"""
import collections
import io
import json
import os
import struct
import sys
import types
import zipfile
import pickle

import h5py
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def out(kind, name):
    d = os.path.join(HERE, kind)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def tensors():
    """Two float32 tensors named as a RetinaFace state dict names them, plus a counter."""
    rng = np.random.default_rng(11)
    weight = rng.standard_normal((4, 2, 3, 3)).astype("<f4")
    bias = np.arange(4, dtype="<f4") / 4
    return weight, bias


# --- safetensors: 8-byte little-endian header length, JSON header, raw data ---------------------
def safetensors():
    weight, bias = tensors()
    count = np.array(7, dtype="<i8")
    entries = [("body.conv.weight", "F32", weight), ("body.conv.bias", "F32", bias),
               ("body.bn.num_batches_tracked", "I64", count)]
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, a in entries:
        raw = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(out("safetensors", "seed.safetensors.seed"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


# --- PyTorch .pth: torch.save's two containers, written with stand-in torch globals -----------
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, data):
        self.key, self.data = key, data


class Tensor:
    def __init__(self, storage, offset, shape):
        self.storage, self.offset, self.shape = storage, offset, shape

    def __reduce_ex__(self, proto):
        stride = [int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape))]
        return (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.shape),
                                     tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.data) // 4)
        return None


def state_dict():
    weight, bias = tensors()
    # The bias lives after the weight in one shared storage: exercises the storage offset.
    shared = Storage("0", weight.tobytes() + bias.tobytes())
    sd = collections.OrderedDict()
    sd["body.conv.weight"] = Tensor(shared, 0, weight.shape)
    sd["body.conv.bias"] = Tensor(shared, weight.size, bias.shape)
    # nn.Module.state_dict() sets _metadata, which pickles as BUILD on the OrderedDict.
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd, [shared]


def dumps(obj):
    f = io.BytesIO()
    Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def pth():
    sd, storages = state_dict()
    legacy = dumps(0x1950a86a20f9469cfc6c) + dumps(1001)
    legacy += dumps({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}})
    legacy += dumps(sd) + dumps([s.key for s in storages])
    for s in storages:
        legacy += struct.pack("<q", len(s.data) // 4) + s.data
    with open(out("pth", "legacy.pth.seed"), "wb") as f:
        f.write(legacy)
    z = io.BytesIO()
    entries = [("archive/data.pkl", dumps(sd)), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{s.key}", s.data) for s in storages]
    entries += [("archive/version", b"3\n")]
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as a:
        for name, data in entries:
            # A fixed date keeps the file reproducible.
            a.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    with open(out("pth", "zip.pth.seed"), "wb") as f:
        f.write(z.getvalue())


# --- Keras HDF5 weights: the layout model.save_weights writes (see seed_r50/README.md) ----------
def h5(name, fixed_length):
    weight, bias = tensors()
    strings = (lambda xs: np.array([x.encode() for x in xs])) if fixed_length else (
        lambda xs: np.array(xs, dtype=h5py.string_dtype("ascii")))
    with h5py.File(out("h5", name), "w") as f:
        f.attrs["layer_names"] = strings(["conv1", "bn1", "relu1"])
        f.attrs["backend"] = "tensorflow"
        g = f.create_group("conv1")
        g.attrs["weight_names"] = strings(["conv1/kernel:0", "conv1/bias:0"])
        g.create_dataset("conv1/kernel:0", data=weight.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        g.create_dataset("conv1/bias:0", data=bias)
        g = f.create_group("bn1")
        kinds = ["gamma", "beta", "moving_mean", "moving_variance"]
        g.attrs["weight_names"] = strings([f"bn1/{k}:0" for k in kinds])
        for i, k in enumerate(kinds):
            g.create_dataset(f"bn1/{k}:0", data=bias + i)
        # Weightless layers store an empty float64 array.
        f.create_group("relu1").attrs["weight_names"] = np.zeros(0)


# --- Images: crops of a test photo in the kinds the decoder meets -------------------------------
def images(photo):
    im = Image.open(photo).convert("RGB")
    crop = im.crop((100, 40, 148, 80))  # 48x40
    crop.save(out("image", "baseline.jpg"), quality=85)  # 4:2:0
    crop.convert("L").resize((32, 24)).save(out("image", "progressive_grey.jpg"), quality=80,
                                            progressive=True)
    crop.resize((24, 20)).save(out("image", "rgb.png"), optimize=True)
    pal = crop.resize((32, 24)).quantize(4)
    pal.info["transparency"] = 0
    pal.save(out("image", "palette_trns.png"), bits=2, transparency=0)
    grey16 = np.asarray(crop.convert("L").resize((16, 12)), dtype=np.uint16) * 257
    Image.fromarray(grey16).save(out("image", "grey16.png"))  # mode I;16: a 16-bit grey PNG


if __name__ == "__main__":
    here_photo = os.path.join(HERE, "..", "..", "..", "shared", "testdata", "images",
                              "small_group.jpg")
    safetensors()
    pth()
    h5("vlen_strings.h5.seed", fixed_length=False)
    h5("fixed_strings.h5.seed", fixed_length=True)
    images(sys.argv[1] if len(sys.argv) > 1 else here_photo)
    for d in ("safetensors", "pth", "h5", "image"):
        for n in sorted(os.listdir(os.path.join(HERE, d))):
            print(d, n, os.path.getsize(os.path.join(HERE, d, n)))
