"""tnml.MPSClassifier: the same model as `tnml mps train`, model files both ways, bad input,
Ctrl-C, the gradient trainer and the refit."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tnml


def cli_test_error(cli, run_dir):
    lines = (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["test_error"]


def eval_error(cli, model_path):
    out = subprocess.run(
        [cli, "mps", "eval", "--model", str(model_path), "--limit", "500"],
        capture_output=True, text=True, check=True,
    ).stdout
    return float(re.search(r"error (\d\.\d+)", out).group(1))


def test_same_options_same_test_error_as_the_cli(cli, sample_small, tmp_path):
    X, y, Xt, yt = sample_small
    run = tmp_path / "run"
    subprocess.run(
        [cli, "mps", "train", "--max-bond", "10", "--sweeps", "1", "--train-limit", "2000", "--seed", "0",
         "--test-limit", "500", "--threads", "2", "--out", str(run)],
        capture_output=True, text=True, check=True,
    )
    clf = tnml.MPSClassifier(max_bond=10, sweeps=1, loss="squared", lam=0.0, threads=2).fit(X, y)
    assert 1 - clf.score(Xt, yt) == pytest.approx(cli_test_error(cli, run), abs=1e-12)
    # the two models predict the same classes
    cli_model = tnml.MPSClassifier.load(run / "model.safetensors")
    np.testing.assert_array_equal(cli_model.predict(Xt), clf.predict(Xt))
    assert cli_model.bond_dims == clf.bond_dims


def test_model_files_go_both_ways(cli, sample_small, tmp_path):
    X, y, Xt, yt = sample_small
    clf = tnml.MPSClassifier(max_bond=6, sweeps=1, loss="cross-entropy", lam=0.5, threads=2).fit(X, y)
    path = tmp_path / "py-model.safetensors"
    clf.save(path)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left
    assert eval_error(cli, path) == pytest.approx(round(1 - clf.score(Xt, yt), 4), abs=1e-12)
    back = tnml.MPSClassifier.load(path)
    np.testing.assert_array_equal(back.predict(Xt), clf.predict(Xt))
    np.testing.assert_allclose(back.decision_function(Xt), clf.decision_function(Xt), rtol=1e-6)
    assert back.loss == "cross-entropy" and back.image_shape == (14, 14)


def test_scores_predictions_and_decision_rule(sample_small):
    X, y, Xt, yt = sample_small
    for loss, rule in [("cross-entropy", np.argmax), ("squared", lambda f, axis: np.argmax(np.abs(f), axis=axis))]:
        clf = tnml.MPSClassifier(max_bond=4, sweeps=1, loss=loss, lam=0.0).fit(X[:500], y[:500])
        f = clf.decision_function(Xt)
        assert f.shape == (len(yt), 10) and np.isfinite(f).all()
        np.testing.assert_array_equal(clf.predict(Xt), rule(f, axis=1))
        v, log_scale = clf.decision_function_normalized(Xt)
        np.testing.assert_allclose(v * np.exp(log_scale)[:, None], f)
    assert clf.score(Xt, yt) > 0.5
    assert [e["event"] for e in clf.history_ if e["event"] == "sweep"] == ["sweep"]


def test_verbose_prints_a_line_per_sweep(sample_small, capsys):
    X, y, _, _ = sample_small
    tnml.MPSClassifier(max_bond=[2, 3], sweeps=2, verbose=True).fit(X[:300], y[:300])
    err = capsys.readouterr().err
    assert re.search(r"sweep 1: train error 0\.\d{4}, cost .*max bond 2", err), err
    assert re.search(r"sweep 2: .*max bond 3", err), err


def test_gradient_trainer_and_refit(sample_small):
    X, y, Xt, yt = sample_small
    g = tnml.MPSClassifier(trainer="gradient", feature_map="linear", max_bond=4, epochs=2, batch_size=50, lr=1e-3,
                           shift=1, random_state=1)
    g.fit(X[:1000], y[:1000])
    assert [e["epoch"] for e in g.history_ if e["event"] == "epoch"] == [1, 2]
    assert g.score(Xt, yt) > 0.3
    assert g.model_.feature_map == "linear" and g.model_.decision == "signed"
    # the cosine schedule decays the step to 0 by the last batch: less progress in 2 short
    # epochs than a constant step, but it learns
    c = tnml.MPSClassifier(trainer="gradient", feature_map="linear", max_bond=4, epochs=2, batch_size=50, lr=1e-3,
                           lr_schedule="cosine", random_state=1).fit(X[:1000], y[:1000])
    assert 0.15 < c.score(Xt, yt) < g.score(Xt, yt) + 0.2
    # a step size that blows up is refused, with the model left as it was before that step
    with pytest.raises(RuntimeError, match="diverged.*lower the learning rate"):
        tnml.MPSClassifier(trainer="gradient", max_bond=4, epochs=1, lr=1e3).fit(X[:1000], y[:1000])
    r = tnml.MPSClassifier(max_bond=4, sweeps=1, loss="squared", lam=0.0, refit="softmax", refit_lambda=1e-4)
    r.fit(X[:1000], y[:1000])
    assert r.model_.decision == "signed"  # softmax logits
    assert any(e["event"] == "note" and "core refit" in e["text"] for e in r.history_)
    assert r.score(Xt, yt) > 0.5


@pytest.mark.parametrize(
    "X,y,exc,message",
    [
        (np.zeros((10, 196), dtype=np.uint8), np.zeros(10, int), TypeError, "dtype uint8.*divide by 255"),
        (np.full((10, 196), np.nan, np.float32), np.zeros(10, int), ValueError, "finite"),
        (np.full((10, 196), 2.0), np.zeros(10, int), ValueError, r"X\[0, 0\] is 2.0: pixel values must lie in \[0, 1\]"),
        (np.zeros(196), np.zeros(1, int), ValueError, "2 dimensions are needed"),
        (np.zeros((10, 196)), np.zeros(9, int), ValueError, "9 labels for 10 images"),
        (np.zeros((10, 196)), -np.ones(10, int), ValueError, "negative"),
        (np.zeros((10, 196)), np.array(["a"] * 10), TypeError, "integer class labels"),
        (np.zeros((10, 196)), np.zeros((10, 1), int), ValueError, "1 dimension"),
        (np.zeros((10, 195)), np.zeros(10, int), ValueError, "not a square image"),
    ],
)
def test_bad_data_raises(X, y, exc, message):
    with pytest.raises(exc, match=message):
        tnml.MPSClassifier(max_bond=2, sweeps=1).fit(X, y)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"max_bond": 0}, "bond dimension 0"),
        ({"max_bond": -1}, "positive integers"),
        ({"sweeps": 0}, "sweeps is 0"),
        ({"loss": "hinge"}, "loss \"hinge\""),
        ({"trainer": "adam"}, "trainer \"adam\""),
        ({"feature_map": "cos"}, "feature_map \"cos\""),
        ({"lam": -1.0}, "lam is -1: it must be finite"),
        ({"threads": 0}, "threads 0"),
        ({"refit": "lasso"}, "refit \"lasso\""),
        ({"refit_lambda": 1e-3}, "refit_lambda is 0.001: it is the penalty of the final refit"),
        ({"turn_site": 500}, r"turn_site is 500: the chain has sites 0\.\.196"),
        ({"trainer": "gradient", "turn_site": 196}, r"turn_site is 196: the chain has sites 0\.\.196"),
        ({"trainer": "gradient", "lr": -1.0}, "lr is -1"),
        ({"trainer": "gradient", "max_bond": [2, 3]}, "one fixed bond"),
        ({"trainer": "gradient", "lr_schedule": "step"}, "lr_schedule \"step\""),
        ({"image_shape": (7, 7)}, "has 49 pixels, X has 196"),
        ({"trainer": "gradient", "device": "gpu"}, "expected cpu, cuda or cuda:N"),
        ({"device": "cuda"}, "the sweep trainer runs on the CPU only"),
    ],
)
def test_bad_options_raise(sample_small, params, message):
    X, y, _, _ = sample_small
    with pytest.raises(ValueError, match=message):
        tnml.MPSClassifier(**{"sweeps": 1, "max_bond": 2, **params}).fit(X[:50], y[:50])


@pytest.mark.parametrize(
    "params,exc,message",
    [
        ({"sweeps": -1}, ValueError, r"sweeps=-1: it must be at least 0"),
        ({"sweeps": 1.5}, TypeError, r"sweeps=1.5: expected an integer"),
        ({"sweeps": 2.0}, TypeError, r"sweeps=2.0: expected an integer"),
        ({"sweeps": True}, TypeError, r"sweeps=True: expected an integer"),
        ({"epochs": "3", "trainer": "gradient"}, TypeError, r"epochs='3': expected an integer"),
        ({"batch_size": 1.5, "trainer": "gradient"}, TypeError, r"batch_size=1.5"),
        ({"shift": -2, "trainer": "gradient"}, ValueError, r"shift=-2"),
        ({"random_state": -1}, ValueError, r"random_state=-1"),
        ({"threads": 2.5}, TypeError, r"threads=2.5"),
        ({"cg_passes": 10**30}, ValueError, r"cg_passes=.*too large"),
        ({"lam": "0.5"}, TypeError, r"lam='0.5': expected a number"),
        ({"lr": float("nan"), "trainer": "gradient"}, ValueError, r"lr=nan: not a number"),
        ({"cutoff": -1e-3}, ValueError, r"cutoff=-0.001"),
        ({"loss": 3}, TypeError, r"loss=3: expected a string"),
        ({"device": None}, TypeError, r"device=None: expected a string"),
        ({"flip": 1, "trainer": "gradient"}, TypeError, r"flip=1: expected True or False"),
    ],
)
def test_options_are_never_coerced(sample_small, params, exc, message):
    """Every option raises naming the parameter and its value: no silent int(1.5), no internal names."""
    X, y, _, _ = sample_small
    with pytest.raises(exc, match=message):
        tnml.MPSClassifier(**{"sweeps": 1, "max_bond": 2, **params}).fit(X[:50], y[:50])


def test_cuda_without_a_gpu_raises_with_the_reason(sample_small):
    """No GPU here (CI): device="cuda" names the missing feature or driver, never trains on the CPU."""
    X, y, _, _ = sample_small
    clf = tnml.MPSClassifier(trainer="gradient", max_bond=2, epochs=1, device="cuda:0")
    with pytest.raises(RuntimeError, match="device cuda:0: (this tnml was built without CUDA support|no CUDA (driver|device))"):
        clf.fit(X[:50], y[:50])
    assert not hasattr(clf, "model_") or clf.model_ is None


def test_predicting_labels_and_files_checked(sample_small, tmp_path):
    X, y, Xt, yt = sample_small
    with pytest.raises(RuntimeError, match="not fitted"):
        tnml.MPSClassifier().predict(Xt)
    clf = tnml.MPSClassifier(max_bond=2, sweeps=1).fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="outside 0..10"):
        clf.score(Xt[:5], np.array([0, 1, 2, 3, 10]))
    with pytest.raises(ValueError, match="X has 784 columns, the model takes 14x14 = 196"):
        clf.predict(np.zeros((2, 784), np.float32))
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        tnml.MPSClassifier.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.safetensors"):
        tnml.MPSClassifier.load(bad)
    with pytest.raises(FileNotFoundError):
        clf.save(tmp_path / "no-such-dir" / "m.safetensors")


def test_sklearn_parameters_round_trip():
    clf = tnml.MPSClassifier(max_bond=7, lam=0.1)
    params = clf.get_params()
    assert params["max_bond"] == 7 and params["lam"] == 0.1
    clone = tnml.MPSClassifier(**params)
    assert clone.get_params() == params
    assert clone.set_params(sweeps=5).sweeps == 5
    with pytest.raises(ValueError, match="no parameter 'bondd'"):
        clone.set_params(bondd=3)
    assert "max_bond=7" in repr(clf)


def test_load_dataset_checks_its_options(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        tnml.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        tnml.load_dataset(split="validation")
    with pytest.raises(ValueError, match="image_size=10 does not fit 28x28"):
        tnml.load_dataset(image_size=10)
    with pytest.raises(FileNotFoundError, match="tnml data fetch"):
        tnml.load_dataset("mnist", data_dir=str(tmp_path))
    X, y = tnml.load_dataset(split="test", image_size=28, limit=3)
    assert X.shape == (3, 784) and X.dtype == np.float32 and y.dtype == np.int64


CHILD = r"""
import sys, numpy as np, tnml
X, y = tnml.load_dataset(split="train")
clf = tnml.MPSClassifier(max_bond=20, sweeps=50, loss="squared", lam=0.0, threads=1)
print("fitting", flush=True)
try:
    clf.fit(X, y)
    print("finished", flush=True)
except KeyboardInterrupt:
    Xt, yt = tnml.load_dataset(split="test", limit=200)
    print(f"interrupted {clf.interrupted_} accuracy {clf.score(Xt, yt):.3f} bonds {max(clf.bond_dims)}", flush=True)
"""


def test_ctrl_c_stops_the_fit_and_keeps_the_last_good_model():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "fitting"
        time.sleep(2.0)  # inside the first sweep (50 sweeps would take many minutes)
        t0 = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert time.time() - t0 < 30
    m = re.search(r"interrupted True accuracy (\d\.\d+) bonds (\d+)", out)
    assert m, (out, err)
    assert float(m.group(1)) > 0.1 and int(m.group(2)) >= 1


def test_fit_releases_the_gil(sample_small):
    import threading

    X, y, _, _ = sample_small
    ticks, done = [], threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    t0 = time.perf_counter()
    tnml.MPSClassifier(max_bond=6, sweeps=1, threads=1).fit(X, y)
    elapsed = time.perf_counter() - t0
    done.set()
    t.join()
    during = [s for s in ticks if t0 < s < t0 + elapsed]
    # a thread that needs the GIL kept ticking while Rust trained (it would stall if fit held it)
    assert elapsed > 0.5 and len(during) > 100, (elapsed, len(during))


def test_defaults_are_the_trainers_and_the_clis():
    """One set of defaults: the signature states the trainers' own (SweepConfig::default,
    GradientConfig::default), which `tnml mps train --help` shows too."""
    import inspect

    lib = tnml._tnml.defaults()
    sig = {k: p.default for k, p in inspect.signature(tnml.MPSClassifier.__init__).parameters.items()}
    for name in ["cutoff", "sweeps", "cg_passes", "refit_passes", "lam", "epochs", "batch_size", "lr", "shift", "flip", "random_state"]:
        assert sig[name] == lib[name], (name, sig[name], lib[name])
    assert sig["max_bond"] == lib["bond"]
    assert sig["loss"] is None and (lib["sweep_loss"], lib["gradient_loss"]) == ("squared", "cross-entropy")
    # loss=None is each trainer's own: the sweep model predicts argmax |f|, the gradient one argmax f
    X, y = tnml.load_dataset("mnist-sample", "train", image_size=14, limit=60, shuffle_seed=0)
    assert tnml.MPSClassifier(max_bond=2, sweeps=1).fit(X, y).model_.decision == "magnitude"
    g = tnml.MPSClassifier(trainer="gradient", feature_map="linear", max_bond=2, epochs=1).fit(X, y)
    assert g.model_.decision == "signed"


def test_bond_is_the_old_name_of_max_bond():
    X, y = tnml.load_dataset("mnist-sample", "train", image_size=14, limit=60, shuffle_seed=0)
    with pytest.warns(FutureWarning, match="max_bond"):
        old = tnml.MPSClassifier(bond=3, sweeps=1).fit(X, y)
    new = tnml.MPSClassifier(max_bond=3, sweeps=1).fit(X, y)
    assert old.bond_dims == new.bond_dims
    with pytest.raises(ValueError, match="give max_bond only"):
        tnml.MPSClassifier(bond=3, max_bond=4).fit(X, y)
