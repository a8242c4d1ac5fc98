"""tnml.MPO against NumPy: TT-SVD round trip, entanglement from an SVD of the regrouped matrix,
the Page value of a random matrix, truncation reports, bad input."""

import re

import numpy as np
import pytest

import tnml


def regrouped(w, in_modes, out_modes):
    """W (prod out, prod in) as the vector with (in_k, out_k) grouped per site, in C order."""
    n = len(in_modes)
    t = w.reshape(*out_modes, *in_modes)
    order = [a for k in range(n) for a in (n + k, k)]  # in_0, out_0, in_1, out_1, ...
    return t.transpose(order)


def numpy_spectrum(w, in_modes, out_modes, bond):
    t = regrouped(w, in_modes, out_modes)
    left = int(np.prod([in_modes[k] * out_modes[k] for k in range(bond)]))
    s = np.linalg.svd(t.reshape(left, -1), compute_uv=False)
    s = s / np.linalg.norm(s)
    return s[s > 1e-15]


@pytest.mark.parametrize(
    "shape,in_modes,out_modes",
    [((64, 64), [4, 4, 4], [4, 4, 4]), ((256, 784), [7, 7, 4, 4], [4, 4, 4, 4]), ((10, 12), [3, 4], [5, 2])],
)
def test_full_rank_round_trip(shape, in_modes, out_modes):
    w = np.random.default_rng(1).standard_normal(shape)
    m = tnml.MPO.from_dense(w, in_modes, out_modes)
    assert m.shape == shape
    np.testing.assert_allclose(m.to_dense(), w, rtol=0, atol=1e-12)
    assert m.num_params == sum(c.size for c in m.cores)
    assert m.compression == pytest.approx(m.num_params / (shape[0] * shape[1]))
    # cores [left, in, out, right] with boundary bonds 1, chained by the bond dims
    dims = [1, *m.bond_dims, 1]
    for k, c in enumerate(m.cores):
        assert c.shape == (dims[k], in_modes[k], out_modes[k], dims[k + 1])
    # and rebuilt from them
    np.testing.assert_allclose(tnml.MPO.from_cores(m.cores).to_dense(), w, atol=1e-12)


def test_cores_contract_to_the_dense_matrix_by_hand():
    w = np.random.default_rng(2).standard_normal((12, 20))
    m = tnml.MPO.from_dense(w, [4, 5], [3, 4])
    a, b = m.cores  # [1, 4, 3, r], [r, 5, 4, 1]
    dense = np.einsum("xiar,rjbz->abij", a, b).reshape(12, 20)  # rows (out0,out1), cols (in0,in1)
    np.testing.assert_allclose(dense, w, atol=1e-12)


def test_entanglement_equals_numpy_svd_of_the_regrouped_matrix():
    in_modes, out_modes = [7, 7, 4, 4], [4, 4, 4, 4]
    w = np.random.default_rng(3).standard_normal((256, 784))
    w[:, :100] *= 5  # not a flat spectrum
    m = tnml.MPO.from_dense(w.astype(np.float32), in_modes, out_modes)  # float32 in, float64 inside
    w = w.astype(np.float32).astype(np.float64)
    for rec in m.entanglement():
        s = numpy_spectrum(w, in_modes, out_modes, rec["bond"])
        np.testing.assert_allclose(rec["spectrum"][: len(s)], s, rtol=1e-9, atol=1e-12)
        p = s**2
        assert rec["entropy"] == pytest.approx(-np.sum(p * np.log(p)), rel=1e-10)
        assert rec["renyi2"] == pytest.approx(-np.log(np.sum(p**2)), rel=1e-10)
        assert rec["bound"] == pytest.approx(np.log(min(rec["bond_dim"], rec["left_dim"], rec["right_dim"])))
        assert rec["entropy"] <= rec["bound"] + 1e-12
        # entry D-1: what a truncation to D values drops
        d = 5
        assert rec["discarded_weight"][d - 1] == pytest.approx(np.sum(s[d:] ** 2), abs=1e-12)
        assert rec["discarded_weight"][-1] == 0.0


def test_gaussian_matrix_is_near_the_page_value():
    # A Gaussian 256 x 256 matrix with modes (4,4,4,4): the middle bond cuts a random state into
    # two halves of dimension m = n = 256, whose mean entropy is ln m - m / (2n) (Page 1993).
    w = np.random.default_rng(4).standard_normal((256, 256))
    m = tnml.MPO.from_dense(w, [4, 4, 4, 4], [4, 4, 4, 4])
    mid = m.entanglement()[1]
    assert (mid["left_dim"], mid["right_dim"]) == (256, 256)
    page = np.log(256) - 0.5
    assert abs(mid["entropy"] - page) < 0.02, (mid["entropy"], page)


def test_truncation_reports_what_it_dropped():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 64)) + 3 * np.outer(rng.standard_normal(64), rng.standard_normal(64))
    m = tnml.MPO.from_dense(w, [4, 4, 4], [4, 4, 4])
    full = m.to_dense()
    best = [b["discarded_weight"][4 - 1] for b in m.entanglement()]
    report = m.truncate(max_bond=4)
    assert m.bond_dims == [4, 4]
    assert sorted(r["bond"] for r in report) == [1, 2]
    assert all(r["kept"] <= 4 <= r["full_rank"] for r in report)
    assert m.discarded == report
    rel_err2 = np.linalg.norm(m.to_dense() - full) ** 2 / np.linalg.norm(full) ** 2
    total = sum(r["discarded_weight"] for r in report)
    # TT-SVD's bound above (the dropped weights add up at most), Eckart-Young's below (no
    # matrix of rank 4 across a bond is closer than the best one at that bond)
    assert rel_err2 <= total * (1 + 1e-9) + 1e-15
    assert rel_err2 >= max(best) * (1 - 1e-9)
    # the fractions of the initial norm add up to the error exactly (orthogonal pieces)
    assert sum(r["discarded_fraction"] for r in report) == pytest.approx(rel_err2, rel=1e-9)
    # a cutoff keeps the fewest values whose dropped weight fits
    c = tnml.MPO.from_dense(w, [4, 4, 4], [4, 4, 4], cutoff=1e-2)
    assert all(r["discarded_weight"] <= 1e-2 for r in c.discarded)


def test_torch_like_tensors_and_lists_are_accepted():
    w = [[1.0, 2.0], [3.0, 4.0]]
    m = tnml.MPO.from_dense(np.array(w), [2, 1], [2, 1])
    np.testing.assert_allclose(m.to_dense(), w)


@pytest.mark.parametrize(
    "w,in_modes,out_modes,exc,message",
    [
        (np.ones((64, 64), dtype=np.int64), [4, 4, 4], [4, 4, 4], TypeError, "dtype int64"),
        (np.full((4, 4), np.nan), [2, 2], [2, 2], ValueError, "finite"),
        (np.ones((64, 64)), [4, 4, 5], [4, 4, 4], ValueError, "in_modes multiply to 80, matrix has 64 columns"),
        (np.ones((64, 64)), [4, 4, 4], [4, 4], ValueError, "in_modes has 3 entries but out_modes has 2"),
        (np.ones(64), [4, 4, 4], [1, 1, 1], ValueError, "2 dimensions are needed"),
        (np.ones((2, 3, 4)), [2], [2], ValueError, "2 dimensions are needed"),
        (np.ones((4, 4)), [2, 0], [2, 2], ValueError, "in_modes\\[1\\] is 0"),
        (np.ones((0, 4)), [4], [1], ValueError, "empty"),
        (np.ones((4, 4)), [2.5, 2], [2, 2], TypeError, "in_modes must be a sequence of integers"),
    ],
)
def test_bad_input_raises_with_the_numbers(w, in_modes, out_modes, exc, message):
    with pytest.raises(exc, match=message):
        tnml.MPO.from_dense(w, in_modes, out_modes)


def test_bond_dimension_zero_is_refused():
    with pytest.raises(ValueError, match="0"):
        tnml.MPO.from_dense(np.ones((4, 4)), [2, 2], [2, 2], max_bond=0)
    m = tnml.MPO.from_dense(np.eye(4), [2, 2], [2, 2])
    with pytest.raises(ValueError):
        m.truncate(max_bond=0)
    with pytest.raises(ValueError):
        m.truncate(cutoff=1.5)


def test_options_are_never_coerced():
    w = np.random.default_rng(0).standard_normal((16, 16))
    for kwargs, err, says in [
        ({"max_bond": True}, TypeError, "max_bond=True: expected an integer"),
        ({"max_bond": 1.5}, TypeError, "max_bond=1.5: expected an integer"),
        ({"max_bond": -1}, ValueError, "max_bond=-1: it must be at least 1"),
        ({"cutoff": "a"}, TypeError, "cutoff='a': expected a number"),
        ({"cutoff": True}, TypeError, "cutoff=True: expected a number"),
    ]:
        with pytest.raises(err, match=re.escape(says)):
            tnml.MPO.from_dense(w, [4, 4], [4, 4], **kwargs)
    for modes, err in [([4.0, 4.0], TypeError), ([True, 16], TypeError), ([16, -1], ValueError), ("44", TypeError)]:
        with pytest.raises(err, match="in_modes"):
            tnml.MPO.from_dense(w, modes, [4, 4])
    m = tnml.MPO.from_dense(w, [4, 4], [4, 4])
    with pytest.raises(TypeError, match="max_bond=2.0"):
        m.truncate(max_bond=2.0)
    with pytest.raises(TypeError, match="as_frame=1"):
        tnml.entangle({"a": w}, as_frame=1)
    # numpy integers are integers
    assert tnml.MPO.from_dense(w, np.array([4, 4]), [4, 4], max_bond=np.int64(2)).bond_dims == [2]


def test_mpo_files_round_trip_and_read_what_the_cli_writes(tmp_path, cli):
    import subprocess

    rng = np.random.default_rng(3)
    a = tnml.MPO.from_dense(rng.standard_normal((16, 12)), [3, 2, 2], [2, 4, 2])
    b = tnml.MPO.from_dense(rng.standard_normal((8, 8)), [2, 2, 2], [2, 2, 2], max_bond=2)
    path = tmp_path / "mpos.safetensors"
    tnml.save_mpos(path, {"fc1.weight": a, "fc2.weight": b})
    back = tnml.read_mpos(path)
    assert list(back) == ["fc1.weight", "fc2.weight"]
    for m, r in ((a, back["fc1.weight"]), (b, back["fc2.weight"])):
        assert r.in_modes == m.in_modes and r.out_modes == m.out_modes and r.bond_dims == m.bond_dims
        for x, y in zip(m.cores, r.cores):
            np.testing.assert_array_equal(x, y)
    # nothing a user made is overwritten unasked; odd input is an error naming it
    with pytest.raises(FileExistsError, match="overwrite=True"):
        tnml.save_mpos(path, {"a": a})
    tnml.save_mpos(path, {"a": a}, overwrite=True)
    assert list(tnml.read_mpos(path)) == ["a"]
    with pytest.raises(TypeError, match="non-empty dict"):
        tnml.save_mpos(tmp_path / "x.safetensors", [a])
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="junk.safetensors: not a safetensors file"):
        tnml.read_mpos(tmp_path / "junk.safetensors")
    with pytest.raises(OSError):
        tnml.read_mpos(tmp_path / "missing.safetensors")
    # the CLI's mpo.safetensors: one writer, one reader
    run = tmp_path / "run"
    subprocess.run(
        [cli, "mpo", "compress", "--matrix", "random", "--in-modes", "4,4", "--out-modes", "4,4", "--max-bond", "3", "--out", str(run)],
        check=True,
        capture_output=True,
    )
    written = tnml.read_mpos(run / "mpo.safetensors")
    assert list(written) == ["random"] and written["random"].bond_dims == [3]
