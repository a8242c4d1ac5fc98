"""tnml.entangle: every weight of a state_dict (dict or safetensors file), one table."""

import json
import struct
import warnings

import numpy as np
import pytest

import tnml


def write_safetensors(path, tensors):
    """A safetensors file written by hand (the format: u64 header length, JSON header, data)."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def small_model(rng):
    """A LeNet-like state_dict: conv (6,1,5,5), linear (10, 84) and (84, 120), biases."""
    return {
        "conv1.weight": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
        "conv1.bias": np.zeros(6, np.float32),
        "fc2.weight": rng.standard_normal((84, 120)).astype(np.float32),
        "fc3.weight": rng.standard_normal((10, 84)).astype(np.float32),
        "fc3.bias": np.zeros(10, np.float32),
    }


def test_every_weight_gets_one_row_per_bond_with_default_modes():
    sd = small_model(np.random.default_rng(0))
    rows = tnml.entangle(sd, as_frame=False)
    layers = sorted({r["layer"] for r in rows})
    assert layers == ["conv1.weight", "fc2.weight", "fc3.weight"]  # biases skipped
    conv = [r for r in rows if r["layer"] == "conv1.weight"]
    assert (conv[0]["rows"], conv[0]["cols"]) == (6, 25)  # out x (in kh kw)
    assert np.prod(conv[0]["in_modes"]) == 25 and np.prod(conv[0]["out_modes"]) == 6
    fc3 = [r for r in rows if r["layer"] == "fc3.weight"]
    assert fc3[0]["in_modes"] == [7, 3, 2, 2] and fc3[0]["out_modes"] == [5, 2, 1, 1]
    assert [r["bond"] for r in fc3] == [1, 2, 3]
    # the same numbers as an MPO built by hand
    m = tnml.MPO.from_dense(sd["fc3.weight"], [7, 3, 2, 2], [5, 2, 1, 1])
    for r, e in zip(fc3, m.entanglement()):
        assert r["entropy"] == pytest.approx(e["entropy"], rel=1e-12)
        assert r["entropy"] <= r["bound"] + 1e-12


def test_modes_override_and_unknown_names():
    sd = small_model(np.random.default_rng(1))
    rows = tnml.entangle(sd, modes={"fc2.weight": ([4, 5, 6], [4, 3, 7])}, as_frame=False)
    fc2 = [r for r in rows if r["layer"] == "fc2.weight"]
    assert fc2[0]["in_modes"] == [4, 5, 6] and len(fc2) == 2
    with pytest.raises(ValueError, match="not in the weights"):
        tnml.entangle(sd, modes={"fc9.weight": ([2], [2])})
    with pytest.raises(ValueError, match=r"fc2.weight \(shape \(84, 120\) read as 84 x 120\): in_modes multiply to 121"):
        tnml.entangle(sd, modes={"fc2.weight": ([11, 11], [84, 1])})


def test_a_safetensors_file_gives_the_same_table(tmp_path):
    sd = small_model(np.random.default_rng(2))
    sd["num_batches_tracked"] = np.array([3], dtype=np.int64)
    sd["half.weight"] = np.random.default_rng(3).standard_normal((8, 8)).astype(np.float16)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, sd)
    with pytest.warns(UserWarning, match="num_batches_tracked: dtype I64"):
        from_file = tnml.entangle(path, as_frame=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_dict = tnml.entangle(sd, as_frame=False)
    key = lambda r: (r["layer"], r["bond"])  # noqa: E731
    a, b = sorted(from_file, key=key), sorted(from_dict, key=key)
    assert [key(r) for r in a] == [key(r) for r in b]
    for r, s in zip(a, b):
        assert r["entropy"] == pytest.approx(s["entropy"], rel=1e-12)
    assert any(r["layer"] == "half.weight" for r in a)  # float16 read too


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        tnml.entangle(bad)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        tnml.entangle(tmp_path / "nope.safetensors")
    with pytest.raises(TypeError, match="dict of arrays"):
        tnml.entangle(42)


def test_dataframe_when_pandas_is_there():
    pd = pytest.importorskip("pandas")
    df = tnml.entangle(small_model(np.random.default_rng(4)))
    assert isinstance(df, pd.DataFrame)
    assert {"layer", "bond", "entropy", "bound", "spectrum"} <= set(df.columns)
    assert (df["entropy"] <= df["bound"] + 1e-12).all()


def test_lopsided_weights_are_left_out_and_sites_are_checked():
    rng = np.random.default_rng(3)
    weights = {"emb.weight": rng.standard_normal((5087 * 2, 12)), "fc.weight": rng.standard_normal((16, 64))}
    with pytest.warns(UserWarning, match=r"emb\.weight: left out \(10174 rows = 5087 x 2 .* pad the weight with zeros to"):
        rows = tnml.entangle(weights, as_frame=False)
    assert {r["layer"] for r in rows} == {"fc.weight"}
    # more sites, more bonds
    six = tnml.entangle({"fc.weight": weights["fc.weight"]}, as_frame=False, sites=6)
    assert len(six) == 5
    with pytest.raises(ValueError, match=r"sites=9: give 2 to 8 sites"):
        tnml.entangle(weights, sites=9)
    with pytest.raises(TypeError, match=r"sites must be an integer"):
        tnml.entangle(weights, sites=4.0)
    with pytest.raises(ValueError, match=r"pad the weight with zeros to"):
        tnml._tnml.default_layer_modes(30522, 384)
