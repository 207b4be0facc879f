"""The wce-xp command line, run as a subprocess on small generated files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import wce_xp


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "wce_xp", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (500, 3)).astype(np.float32)
    z = (rng.uniform(size=(500, 3)) > 0.7).astype(np.float32)
    w = rng.uniform(0, 2, 500).astype(np.float32)
    m = rng.uniform(size=(500, 3)) > 0.1
    for name, a in dict(x=x, z=z, w=w, m=m, x1=x[:, 0], z1=z[:, 0], q=np.array([1.0, 2, 3]),
                        xs=np.array(["a", "b"]), z2=z[:400], z4=np.ones((500, 4), np.float32),
                        zbad=np.where(z > 0, 1.5, 0).astype(np.float32),
                        wneg=-w, mf=m.astype(np.float32)).items():
        np.save(d / f"{name}.npy", a)
    xn = x.copy()
    xn[[7, 9], 1] = np.nan
    xn[20, 0] = np.inf
    np.save(d / "xnan.npy", xn)
    np.savez(d / "both.npz", logits=x, labels=z)
    np.savez(d / "one.npz", x)
    (d / "trunc.npy").write_bytes((d / "x.npy").read_bytes()[:300])
    (d / "magic.npy").write_bytes(b"NOTNUMPY" + b"\0" * 100)
    return d, x, z, w, m


def _err(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wce-xp: error:"), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def demo():
    """One ``wce-xp demo`` (it loads every installed library) for the tests that read it."""
    return run("demo")


def test_demo_runs_on_every_installed_backend(demo):
    res = demo
    assert res.returncode == 0, res.stderr
    from wce_xp.cli import _backends

    for name in _backends.installed():
        assert f"\n{name} (" in res.stdout, name
    assert "numpy (numpy.ndarray, float32)" in res.stdout
    assert "largest difference between backends" in res.stdout


def test_eval_json_per_class_equals_the_library(files, tmp_path):
    d, x, z, w, m = files
    out = tmp_path / "report.json"
    res = run("eval", d / "x.npy", d / "z.npy", "--pos-weight", "1,2,3", "--weight",
              d / "w.npy", "--mask", d / "m.npy", "--per-class", "--format", "json",
              "--output", out, "--chunk-rows", 64)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert json.loads(out.read_text()) == rep
    assert set(rep) == {"loss", "reduction", "n_elements", "n_masked", "backend", "pos_weight",
                        "per_class", "elapsed_s", "elements_per_s"}
    q = np.array([1.0, 2.0, 3.0])
    kw = dict(weight=w[:, None], mask=m, reduction="mean")
    want = wce_xp.weighted_cross_entropy_with_logits(z.astype(float), x.astype(float), q, **kw)
    per = wce_xp.weighted_cross_entropy_with_logits(z.astype(float), x.astype(float), q,
                                                    axis=0, **kw)
    assert rep["loss"] == pytest.approx(float(want), rel=1e-6)
    assert [c["loss"] for c in rep["per_class"]] == pytest.approx(list(per), rel=1e-6)
    assert rep["n_elements"] == 1500 and rep["n_masked"] == int((~m).sum())
    assert rep["pos_weight"] == [1.0, 2.0, 3.0]
    assert [c["positives"] for c in rep["per_class"]] == list((z * m).sum(axis=0))


@pytest.mark.parametrize("reduction", ["sum", "weighted_mean"])
def test_eval_table_and_reductions(files, reduction):
    d, x, z, w, _m = files
    res = run("eval", d / "x1.npy", d / "z1.npy", "--reduction", reduction, "--weight",
              d / "w.npy", "--label-smoothing", "0.1", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "loss" in res.stdout and reduction in res.stdout
    want = wce_xp.weighted_cross_entropy_with_logits(
        z[:, 0].astype(float), x[:, 0].astype(float), 1.0, weight=w.astype(float),
        label_smoothing=0.1, reduction=reduction)
    got = float(res.stdout.split("loss")[1].split()[0])
    assert got == pytest.approx(float(want), rel=1e-5)


def test_eval_pos_weight_from_npy_file(files):
    d, *_ = files
    a = json.loads(run("eval", d / "x.npy", d / "z.npy", "--pos-weight", d / "q.npy",
                       "--format", "json").stdout)
    b = json.loads(run("eval", d / "x.npy", d / "z.npy", "--pos-weight", "1,2,3",
                       "--format", "json").stdout)
    assert a["pos_weight"] == [1.0, 2.0, 3.0] and a["loss"] == b["loss"]


def test_eval_npz_members_and_pos_weight_auto(files):
    d, _x, z, *_ = files
    res = run("eval", f"{d / 'both.npz'}:logits", f"{d / 'both.npz'}:labels",
              "--pos-weight", "auto", "--format", "json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    q = wce_xp.pos_weight_from_labels(z.astype(float))
    assert rep["pos_weight"] == pytest.approx(list(q))
    res = run("eval", d / "one.npz", d / "z.npy", "--format", "json")
    assert res.returncode == 0, res.stderr


def test_eval_parquet(files, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    _d, x, z, *_ = files
    pq.write_table(pa.table({f"c{i}": x[:, i] for i in range(3)}), tmp_path / "x.parquet")
    pq.write_table(pa.table({f"c{i}": z[:, i] for i in range(3)}), tmp_path / "z.parquet")
    res = run("eval", tmp_path / "x.parquet", tmp_path / "z.parquet", "--format", "json")
    assert res.returncode == 0, res.stderr
    want = wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction="mean")
    assert json.loads(res.stdout)["loss"] == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize(
    "other", [pytest.param(b, marks=pytest.mark.home(b)) for b in ("torch", "jax", "dask",
                                                                   "tensorflow")])
def test_eval_other_backends_equal_numpy(files, other):
    pytest.importorskip({"torch": "torch", "jax": "jax", "dask": "dask.array",
                         "tensorflow": "tensorflow"}[other])
    d, *_ = files
    args = ["eval", d / "x.npy", d / "z.npy", "--pos-weight", "2", "--per-class", "--format",
            "json", "--chunk-rows", 100]
    ref = json.loads(run(*args).stdout)
    res = run(*args, "--backend", other)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["backend"] == other
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-6)
    assert res.stderr == ""  # no library log noise (TensorFlow's C++ logs are silenced)


@pytest.mark.home("dask")
def test_eval_dask_local_cluster_equals_numpy(files):
    pytest.importorskip("dask.distributed")
    d, *_ = files
    args = ["eval", d / "x.npy", d / "z.npy", "--per-class", "--format", "json",
            "--chunk-rows", 128, "--mask", d / "m.npy"]
    ref = json.loads(run(*args).stdout)
    res = run(*args, "--backend", "dask", "--scheduler", "local")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-6)
    assert [c["loss"] for c in got["per_class"]] == pytest.approx(
        [c["loss"] for c in ref["per_class"]], rel=1e-6)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.npy", "z.npy"], ["LOGITS file", "missing.npy", "no such file"]),
        (["x.npy", "."], ["LABELS file", "not a regular file"]),
        (["trunc.npy", "z.npy"], ["trunc.npy", "not a valid .npy file"]),
        (["magic.npy", "z.npy"], ["magic.npy", "is not a .npy file", "numpy.save"]),
        (["both.npz:nope", "z.npy"], ["both.npz:nope", "no array named 'nope'", "logits"]),
        (["both.npz", "z.npy"], ["holds 2 arrays"]),
        (["xs.npy", "z.npy"], ["xs.npy", "not numeric"]),
        (["x.npy", "z2.npy"], ["different numbers of rows", "500", "400"]),
        (["x.npy", "z4.npy"], ["different numbers of classes"]),
        (["x.npy", "z.npy", "--pos-weight", "1,2"], ["--pos-weight", "2 values for 3 classes"]),
        (["x.npy", "z.npy", "--pos-weight", "-1"], ["--pos-weight", "non-negative"]),
        (["x.npy", "z.npy", "--pos-weight", "lots"], ["--pos-weight", "'lots'"]),
        (["x.npy", "z.npy", "--weight", "wneg.npy"], ["--weight file", "finite and non-negative"]),
        (["x.npy", "zbad.npy"], ["LABELS file", "outside [0, 1]", "first in row 2"]),
        (["xnan.npy", "z.npy"], ["LOGITS file", "3 NaN or infinite", "row 7"]),
        (["x.npy", "z.npy", "--mask", "mf.npy"], ["--mask file", "boolean"]),
        (["x.npy", "z.npy", "--backend", "mxnet"], ["--backend", "mxnet"]),
        (["x.npy", "z.npy", "--label-smoothing", "2"], ["--label-smoothing"]),
        (["x.npy", "z.npy", "--chunk-rows", "0"], ["--chunk-rows"]),
        (["x.npy", "z.npy", "--scheduler", "local"], ["--scheduler", "--backend dask"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output_file(files, tmp_path, args, words):
    d, *_ = files
    out = tmp_path / "report.json"
    res = run("eval", *args, "--output", out, cwd=d)
    _err(res, *words)
    assert not out.exists()
    assert not any(p.name.startswith(".report.json") for p in tmp_path.iterdir())


def test_missing_backend_names_the_extra(files):
    d, *_ = files
    try:
        import cupy  # noqa: F401

        pytest.skip("cupy is installed here")
    except Exception:
        pass
    res = run("eval", d / "x.npy", d / "z.npy", "--backend", "cupy")
    _err(res, "--backend", "cupy", "pip install 'wce_xp[cupy]'")


def test_unreadable_file(files, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    d, *_ = files
    p = tmp_path / "secret.npy"
    p.write_bytes((d / "x.npy").read_bytes())
    p.chmod(0)
    _err(run("eval", p, d / "z.npy"), "cannot be read")


def test_per_class_float32_figures_accumulate_in_double(tmp_path):
    """Issue 8, item 11: 4e6 float32 rows x 2 classes; per-class and overall means
    within 1e-6 of the float64 library call (a float32 accumulator drifted 4.6e-3)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (4_000_000, 2)).astype(np.float32)
    z = (rng.uniform(size=(4_000_000, 2)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", z)
    res = run("eval", tmp_path / "x.npy", tmp_path / "z.npy", "--pos-weight", "2",
              "--per-class", "--format", "json", "--chunk-rows", "1000000")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    want = wce_xp.weighted_cross_entropy_with_logits(z64, x64, 2.0, reduction="mean", axis=0)
    got = [c["loss"] for c in report["per_class"]]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(report["loss"], want.mean(), rtol=1e-6)


# --- issue 10: never lose data, one line, strict JSON, conveniences -------------------


def _eval_args(d):
    return ["eval", d / "x.npy", d / "z.npy"]


@pytest.mark.parametrize("how", ["same", "dot", "symlink", "weight"])
def test_output_onto_an_input_is_refused_and_the_input_kept(files, tmp_path, how):
    d, *_ = files
    work = tmp_path / "w"
    work.mkdir()
    for name in ("x.npy", "z.npy", "w.npy"):
        (work / name).write_bytes((d / name).read_bytes())
    before = {n: (work / n).read_bytes() for n in ("x.npy", "z.npy", "w.npy")}
    args = ["eval", "x.npy", "z.npy", "--weight", "w.npy"]
    if how == "same":
        out = "x.npy"
    elif how == "dot":
        out = "./z.npy"
    elif how == "symlink":
        os.symlink(work / "x.npy", work / "link.npy")
        out = "link.npy"
    else:
        out = "w.npy"
    res = run(*args, "--output", out, cwd=work)
    _err(res, "--output", "refusing to overwrite an input")
    for n, data in before.items():
        assert (work / n).read_bytes() == data, n
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]


def test_output_to_a_special_file_is_written_through(files, tmp_path):
    d, *_ = files
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import threading

    got = {}

    def reader():
        with open(fifo) as fh:
            got["text"] = fh.read()

    t = threading.Thread(target=reader)
    t.start()
    res = run(*_eval_args(d), "--format", "json", "--output", fifo)
    t.join(timeout=60)
    assert res.returncode == 0, res.stderr
    assert stat_is_fifo(fifo)
    assert json.loads(got["text"])["loss"] == json.loads(res.stdout)["loss"]
    res = run(*_eval_args(d), "--output", "/dev/null")
    assert res.returncode == 0, res.stderr
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def stat_is_fifo(path):
    import stat

    return stat.S_ISFIFO(os.stat(path).st_mode)


def test_report_modes_follow_the_umask_and_existing_files_keep_theirs(files, tmp_path):
    d, *_ = files
    new = tmp_path / "new.txt"
    old_mask = os.umask(0o022)
    try:
        res = run(*_eval_args(d), "--output", new)
    finally:
        os.umask(old_mask)
    assert res.returncode == 0, res.stderr
    assert (new.stat().st_mode & 0o777) == 0o644
    existing = tmp_path / "existing.txt"
    existing.write_text("old")
    existing.chmod(0o640)
    res = run(*_eval_args(d), "--output", existing)
    assert res.returncode == 0, res.stderr
    assert (existing.stat().st_mode & 0o777) == 0o640
    assert existing.read_text().startswith("wce-xp eval")
    link = tmp_path / "link.txt"
    os.symlink(existing, link)
    res = run(*_eval_args(d), "--format", "json", "--output", link)
    assert res.returncode == 0 and link.is_symlink()
    assert json.loads(existing.read_text())["loss"] > 0


def test_sigterm_exits_143_and_leaves_no_temporary_file(tmp_path):
    import signal
    import time

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(3_000_000, 4)).astype(np.float32))
    np.save(tmp_path / "z.npy", (rng.uniform(size=(3_000_000, 4)) > 0.5).astype(np.float32))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    # about 60,000 small chunks over two passes: tens of seconds of work, signalled
    # well after start-up (the handler is installed before any work starts)
    proc = subprocess.Popen([sys.executable, "-m", "wce_xp", "eval", "x.npy", "z.npy",
                             "--pos-weight", "auto", "--chunk-rows", "100", "--output",
                             "out.txt"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4.0)
    assert proc.poll() is None, "finished before the signal: make the job longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip() == "wce-xp: terminated"
    assert not [p for p in os.listdir(tmp_path) if p not in ("x.npy", "z.npy")]


def test_closed_stdout_pipe_ends_quietly(files):
    d, *_ = files
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "wce_xp", *map(str, _eval_args(d)),
                             "--per-class", "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and err == "", err
    assert proc.returncode == 141


def test_strict_json_writes_null_for_nan(files, tmp_path):
    d, x, *_ = files
    m = np.ones(x.shape, bool)
    m[:, 1] = False  # class 1 has no unmasked element: its mean is NaN
    np.save(tmp_path / "m.npy", m)
    res = run(*_eval_args(d), "--mask", tmp_path / "m.npy", "--per-class", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert "NaN" not in res.stdout
    report = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert report["per_class"][1]["loss"] is None
    assert report["per_class"][0]["loss"] > 0


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_weights_and_pos_weights_are_refused(files, tmp_path, bad):
    d, x, *_ = files
    w = np.ones(len(x), np.float32)
    w[5] = float(bad)
    np.save(tmp_path / "w.npy", w)
    _err(run(*_eval_args(d), "--weight", tmp_path / "w.npy"), "--weight",
         "finite and non-negative", "row 5")
    _err(run(*_eval_args(d), "--pos-weight", bad), "--pos-weight", "finite")
    _err(run(*_eval_args(d), "--pos-weight", "1e400"), "--pos-weight", "finite")


def test_version_usage_and_help():
    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"wce-xp {wce_xp.__version__}"
    res = run()
    assert res.returncode == 2 and res.stderr.startswith("usage: wce-xp")
    res = run("eval", "--help")
    assert res.returncode == 0
    for word in ("(default: mean)", "(default: 1048576)", "examples:", "--label-smoothing",
                 "Keras's rule", "NaN and infinities as null"):
        assert word in res.stdout, word


def test_demo_says_which_backends_ran_and_how_to_add_the_others(demo):
    res = demo
    assert res.returncode == 0, res.stderr
    assert "backends run: numpy" in res.stdout
    from wce_xp.cli import _backends

    missing = [n for n in _backends.BACKENDS if n not in _backends.installed()]
    for name in missing:
        assert f"  {name}: " in res.stdout
    if "torch" in missing and not _backends.has_nvidia_gpu():
        assert "download.pytorch.org/whl/cpu" in res.stdout


def test_empty_files_names_from_files_and_devices_give_one_line(files, tmp_path):
    d, *_ = files
    np.save(tmp_path / "rows0.npy", np.zeros((0, 3), np.float32))
    np.save(tmp_path / "cols0.npy", np.zeros((3, 0), np.float32))
    _err(run("eval", tmp_path / "rows0.npy", tmp_path / "rows0.npy"), "no rows")
    _err(run("eval", tmp_path / "cols0.npy", tmp_path / "cols0.npy"), "no classes")
    np.savez(tmp_path / "names.npz", **{"a\x1b[31mred": np.zeros(3), "b\nline": np.zeros(3)})
    res = run("eval", tmp_path / "names.npz", tmp_path / "names.npz")
    _err(res, "a\\x1b[31mred", "b\\nline")
    assert "\x1b" not in res.stderr
    np.savez(tmp_path / "many.npz", **{f"m{i}": np.zeros(1) for i in range(3000)})
    res = run("eval", tmp_path / "many.npz", tmp_path / "many.npz")
    _err(res, "(2990 more)")
    assert len(res.stderr) < 400
    pytest.importorskip("torch")
    _err(run(*_eval_args(d), "--backend", "torch", "--device", "meta"), "--device", "meta")
    import torch

    if not torch.cuda.is_available():
        _err(run(*_eval_args(d), "--backend", "torch", "--device", "cuda"), "--device", "cuda")


# --- .npz members are streamed: header first, then rows ---------------------------------


def _npz_pair(tmp_path, compressed, rows=20_000, classes=3):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, (rows, classes)).astype(np.float32)
    z = (rng.uniform(size=(rows, classes)) > 0.7).astype(np.float32)
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "p.npz", logits=x, labels=z)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", z)
    return x, z


@pytest.mark.home("dask")  # (then the same file on the Dask backend)
@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_streams_and_equals_npy(tmp_path, compressed):
    _npz_pair(tmp_path, compressed)
    args = ["--per-class", "--format", "json", "--chunk-rows", "777", "--pos-weight", "auto"]
    ref = json.loads(run("eval", tmp_path / "x.npy", tmp_path / "z.npy", *args).stdout)
    res = run("eval", f"{tmp_path / 'p.npz'}:logits", f"{tmp_path / 'p.npz'}:labels", *args)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert got["per_class"] == [
        {**c, "loss": pytest.approx(c["loss"], rel=1e-12)} for c in ref["per_class"]]
    pytest.importorskip("dask")
    res = run("eval", f"{tmp_path / 'p.npz'}:logits", f"{tmp_path / 'p.npz'}:labels", *args,
              "--backend", "dask")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["loss"] == pytest.approx(ref["loss"], rel=1e-12)


def test_npz_memory_is_one_chunk_and_tasks_carry_no_data(tmp_path):
    import pickle
    import tracemalloc

    from wce_xp.cli._readers import ArrayReader

    x, _ = _npz_pair(tmp_path, True, rows=400_000, classes=4)  # 6.4 MB per member
    tracemalloc.start()
    reader = ArrayReader(f"{tmp_path / 'p.npz'}:logits", "LOGITS")
    assert reader.shape == x.shape
    _, peak_open = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    total = 0.0
    for i0 in range(0, reader.rows, 10_000):
        chunk = reader.read(i0, min(i0 + 10_000, reader.rows))
        total += float(chunk.astype(np.float64).sum())
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == pytest.approx(float(x.astype(np.float64).sum()), rel=1e-9)
    assert peak_open < 1 << 20  # the header only
    assert peak_read < 2 << 20  # about one 160 kB chunk (and its float64 copy), not 6.4 MB
    assert len(pickle.dumps(reader)) < 4096  # what a Dask task carries


def test_npz_bomb_is_refused_from_the_header(tmp_path):
    import tracemalloc

    from wce_xp.cli._readers import ArrayReader

    np.savez_compressed(tmp_path / "bomb.npz", np.zeros(50_000_000))  # 400 MB inflated
    assert (tmp_path / "bomb.npz").stat().st_size < 2_000_000
    tracemalloc.start()
    reader = ArrayReader(str(tmp_path / "bomb.npz"), "LOGITS")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert reader.rows == 50_000_000 and peak < 1 << 20
    np.save(tmp_path / "z.npy", np.zeros(10, np.float32))
    _err(run("eval", tmp_path / "bomb.npz", tmp_path / "z.npy"), "different numbers of rows")


def test_corrupt_npz_members_give_one_line(tmp_path):
    import zipfile

    np.savez_compressed(tmp_path / "ok.npz", x=np.arange(100_000, dtype=np.float64))
    raw = bytearray((tmp_path / "ok.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "ok.npz") as zf:
        info = zf.getinfo("x.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[start:start + 64] = b"\xff" * 64  # break the deflate stream after the header
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    np.save(tmp_path / "z.npy", np.zeros(100_000, np.float32))
    _err(run("eval", tmp_path / "bad.npz", tmp_path / "z.npy"), "LOGITS file")
    # a header whose shape does not match the member's size
    hdr = tmp_path / "lie.npy"
    with open(hdr, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (2**40,)})
        fh.write(np.zeros(10).tobytes())
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as zf:
        zf.write(hdr, "x.npy")
    _err(run("eval", tmp_path / "lie.npz", tmp_path / "z.npy"), "declares shape")
    _err(run("eval", hdr, tmp_path / "z.npy"), "not a valid .npy file")


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_integer_and_bool_logits_are_refused_like_the_library(tmp_path, dtype):
    """The library refuses non-floating logits (TypeError); the command line agrees."""
    x = (np.arange(12).reshape(6, 2) % 3).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", np.zeros((6, 2), np.float32))
    _err(run("eval", tmp_path / "x.npy", tmp_path / "z.npy"), "LOGITS file", dtype,
         "real numbers")
    with pytest.raises(TypeError, match="logits: expected a real floating array"):
        wce_xp.weighted_cross_entropy_with_logits(np.zeros((6, 2)), x, 1.0)


def test_float16_logits_agree_with_the_library(tmp_path):
    """float16 logits: both compute in float32; the library's result is that value
    rounded to float16, the command line reports it unrounded."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (5000, 2)).astype(np.float16)
    z = (rng.uniform(size=(5000, 2)) > 0.6).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", z)
    res = run("eval", tmp_path / "x.npy", tmp_path / "z.npy", "--format", "json",
              "--pos-weight", "2", "--chunk-rows", "999")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)["loss"]
    lib32 = wce_xp.weighted_cross_entropy_with_logits(z, x.astype(np.float32), 2.0,
                                                      reduction="mean")
    lib16 = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction="mean")
    assert lib16.dtype == np.float16
    assert got == pytest.approx(float(lib32), rel=1e-6)
    assert float(lib16) == pytest.approx(got, rel=2**-11)


# --- Parquet is read as record batches -----------------------------------------------


def test_parquet_streams_and_equals_npy(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(5)
    x = rng.normal(0, 3, (30_000, 3)).astype(np.float32)
    z = (rng.uniform(size=(30_000, 3)) > 0.6).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", z)
    pq.write_table(pa.table({f"c{i}": x[:, i] for i in range(3)}), tmp_path / "x.parquet",
                   row_group_size=7000)
    pq.write_table(pa.table({"a": z[:, 0], "b": z[:, 1], "c": z[:, 2], "other": z[:, 0]}),
                   tmp_path / "z.parquet", row_group_size=5000)
    args = ["--per-class", "--format", "json", "--chunk-rows", "1234"]
    ref = json.loads(run("eval", tmp_path / "x.npy", tmp_path / "z.npy", *args).stdout)
    for backend in ("numpy", "dask"):
        if backend == "dask":
            pytest.importorskip("dask")
        res = run("eval", tmp_path / "x.parquet", f"{tmp_path / 'z.parquet'}:a,b,c", *args,
                  "--backend", backend)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["loss"] == pytest.approx(ref["loss"], rel=1e-12)

    from wce_xp.cli._readers import ArrayReader

    def peak_bytes(rows):
        """Arrow memory in use while reading a file of ``rows`` rows in 1000-row chunks
        (row groups of 7000 rows): one row group's worth, whatever the file's size."""
        xs = np.resize(x, (rows, 3))
        pq.write_table(pa.table({f"c{i}": xs[:, i] for i in range(3)}),
                       tmp_path / "big.parquet", row_group_size=7000)
        reader = ArrayReader(str(tmp_path / "big.parquet"), "LOGITS")
        assert reader._whole is None and reader.shape == (rows, 3)
        base, peak = pa.total_allocated_bytes(), 0
        for i0 in range(0, rows, 1000):
            np.testing.assert_array_equal(reader.read(i0, min(i0 + 1000, rows)),
                                          xs[i0:i0 + 1000])
            peak = max(peak, pa.total_allocated_bytes() - base)
        return peak

    small, large = peak_bytes(30_000), peak_bytes(300_000)  # 0.36 MB and 3.6 MB files
    assert large <= small < 500_000


def test_parquet_bad_files_give_one_line(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({}), tmp_path / "empty.parquet")
    np.save(tmp_path / "z.npy", np.zeros(4, np.float32))
    _err(run("eval", tmp_path / "empty.parquet", tmp_path / "z.npy"), "no columns")
    pq.write_table(pa.table({"s": ["a", "b", "c", "d"]}), tmp_path / "str.parquet")
    _err(run("eval", tmp_path / "str.parquet", tmp_path / "z.npy"), "not numeric")
    pq.write_table(pa.table({"i": pa.array([1, None, 0, 1], pa.int64())}),
                   tmp_path / "nulls.parquet")
    np.save(tmp_path / "x.npy", np.zeros(4, np.float32))
    _err(run("eval", tmp_path / "x.npy", tmp_path / "nulls.parquet"), "missing values")
    pq.write_table(pa.table({"w": pa.array([1.0, None, 2.0, 1.0])}), tmp_path / "w.parquet")
    _err(run("eval", tmp_path / "x.npy", tmp_path / "z.npy", "--weight",
             tmp_path / "w.parquet"), "--weight", "finite and non-negative")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1" + b"\0" * 50)
    _err(run("eval", tmp_path / "junk.parquet", tmp_path / "z.npy"), "not a valid Parquet")


def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal (a pseudo-terminal here) a rich progress bar appears on stderr for
    work longer than a second; stdout still carries only the report."""
    pytest.importorskip("rich")
    import pty
    import select

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(2_000_000, 2)).astype(np.float32))
    np.save(tmp_path / "z.npy", (rng.uniform(size=(2_000_000, 2)) > 0.5).astype(np.float32))
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="100", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "wce_xp", "eval", "x.npy", "z.npy",
                             "--chunk-rows", "250", "--format", "json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    assert b"evaluating" in seen, seen[-500:]
    assert json.loads(out)["n_elements"] == 4_000_000


def test_stdout_on_a_full_device_gives_one_line(files):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    d, *_ = files
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "wce_xp", *map(str, _eval_args(d)),
                              "--per-class"], stdout=full, stderr=subprocess.PIPE, text=True,
                             env=env, timeout=120)
    _err(res, "cannot write the report")


# --- signals at every stage: start-up (imports), cluster start-up, shutdown ---------------

_SIGNAL_AT_IMPORT = """
import importlib.abc, os, signal, sys
sig, target = getattr(signal, sys.argv[1]), sys.argv[2]
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target_=None):
        if name == target:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), sig)  # acted on at the import's next bytecode
        return None
sys.meta_path.insert(0, Hook())
from wce_xp.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _run_script(script, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _ended_by(res, sig):
    code, word = (130, "interrupted") if sig == "SIGINT" else (143, "terminated")
    assert res.returncode == code, (res.returncode, res.stderr)
    assert res.stderr == f"wce-xp: {word}\n", res.stderr
    assert res.stdout == ""


# NumPy's C core (numpy._core from NumPy 2, numpy.core before)
_NUMPY_CORE = ("numpy._core" if int(np.__version__.split(".")[0]) >= 2
               else "numpy.core") + "._multiarray_umath"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("target", [
    _NUMPY_CORE,  # NumPy turns an interrupt there into an ImportError
    "argparse", "wce_xp._loss", "wce_xp.cli._readers"])
def test_signal_while_the_command_line_loads(files, sig, target):
    d, *_ = files
    # the hook must see the import: the child starts with none of these loaded
    res = _run_script(_SIGNAL_AT_IMPORT, sig, target, *_eval_args(d))
    _ended_by(res, sig)


def test_the_entry_point_loads_nothing_heavy():
    script = ("import sys; import wce_xp, wce_xp.cli; "
              "print(sorted(m for m in ('numpy', 'typing', 'wce_xp._loss', "
              "'wce_xp.cli._commands') "
              "if m in sys.modules))")
    res = _run_script(script)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    # and the lazy names resolve to the real functions
    from wce_xp import _loss

    assert wce_xp.weighted_cross_entropy_with_logits is _loss.weighted_cross_entropy_with_logits
    assert "sigmoid_focal_loss" in dir(wce_xp)
    with pytest.raises(AttributeError, match="no_such_name"):
        wce_xp.no_such_name  # noqa: B018


_SIGNAL_IN_CLUSTER_START = """
import os, signal, sys, threading
import distributed
sig = getattr(signal, sys.argv[1])
init = distributed.LocalCluster.__init__
def slow_start(self, *args, **kwargs):
    # the signal comes while the workers are being started
    threading.Timer(0.3, os.kill, (os.getpid(), sig)).start()
    init(self, *args, **kwargs)
distributed.LocalCluster.__init__ = slow_start
from wce_xp.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.home("dask")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_while_the_local_cluster_starts(files, sig):
    pytest.importorskip("dask.distributed")
    d, *_ = files
    res = _run_script(_SIGNAL_IN_CLUSTER_START, sig, *_eval_args(d), "--backend", "dask",
                      "--scheduler", "local")
    _ended_by(res, sig)


_SIGNAL_AT_SHUTDOWN = """
import atexit, os, signal, sys, time
sig = getattr(signal, sys.argv[1])
def late():
    os.kill(os.getpid(), sig)
    time.sleep(0.5)  # the signal arrives while exit handlers run
    print("exit handlers went on", file=sys.stderr)
atexit.register(late)
from wce_xp.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_during_shutdown_ends_quietly_after_the_report(files, sig):
    d, *_ = files
    res = _run_script(_SIGNAL_AT_SHUTDOWN, sig, *_eval_args(d))
    assert res.returncode == (130 if sig == "SIGINT" else 143), res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("wce-xp eval")  # the report was complete before


# --- issue 20: what the command line writes ---------------------------------------------


def test_the_output_extension_sets_the_format(files, tmp_path):
    d, *_ = files
    out = tmp_path / "report.json"
    res = run(*_eval_args(d), "--per-class", "--output", out)
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())  # JSON in the file, and on stdout
    assert json.loads(res.stdout) == report and "per_class" in report
    csv_out = tmp_path / "report.csv"
    res = run(*_eval_args(d), "--per-class", "--output", csv_out)
    assert res.returncode == 0, res.stderr
    assert csv_out.read_text().splitlines()[0] == "class,loss,positives,negatives,pos_weight"
    res = run(*_eval_args(d), "--format", "table", "--output", tmp_path / "r.json")
    _err(res, "names a json file but --format is table", "drop --format")
    assert not (tmp_path / "r.json").exists()
    plain = tmp_path / "report.out"
    assert run(*_eval_args(d), "--output", plain).returncode == 0
    assert plain.read_text().startswith("wce-xp eval")


def test_csv_for_pandas(files, tmp_path):
    import csv
    import io

    d, *_ = files
    res = run(*_eval_args(d), "--format", "csv", "--per-class")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    ref = json.loads(run(*_eval_args(d), "--format", "json", "--per-class").stdout)
    assert len(rows) == len(ref["per_class"])
    for row, want in zip(rows, ref["per_class"], strict=True):
        assert int(row["class"]) == want["class"]
        assert float(row["loss"]) == pytest.approx(want["loss"], rel=1e-12)
        assert int(row["positives"]) == want["positives"]
    res = run(*_eval_args(d), "--format", "csv")
    lines = res.stdout.splitlines()
    assert lines[0] == "loss,reduction,n_elements,n_masked,backend" and len(lines) == 2


def test_counts_are_integers(files):
    d, *_ = files
    report = json.loads(run(*_eval_args(d), "--format", "json", "--per-class").stdout)
    for c in report["per_class"]:
        assert isinstance(c["positives"], int) and isinstance(c["negatives"], int)
    table = run(*_eval_args(d), "--per-class").stdout
    assert "e+" not in table.split("class")[-1]
    big = {"loss": 0.5, "reduction": "mean", "n_elements": 6_000_000, "n_masked": 0,
           "backend": "numpy", "pos_weight": [1.0], "elapsed_s": 1.0,
           "elements_per_s": 6e6,
           "per_class": [{"class": 0, "loss": 0.5, "positives": 2998810,
                          "negatives": 3001190, "pos_weight": 1.0}]}
    from wce_xp.cli._commands import build_parser, format_table

    args = build_parser().parse_args(["eval", "a.npy", "b.npy"])
    assert "2,998,810" in format_table(big, args)


def test_a_text_file_named_npy_says_what_the_file_should_be(tmp_path):
    (tmp_path / "x.npy").write_text("0.5,1.0\n")
    np.save(tmp_path / "z.npy", np.zeros(2))
    res = run("eval", tmp_path / "x.npy", tmp_path / "z.npy")
    _err(res, "is not a .npy file", "numpy.save")
    assert "allow_pickle" not in res.stderr


def test_eval_alone_shows_its_usage_and_an_example():
    res = run("eval")
    assert res.returncode == 2
    assert "usage: wce-xp eval" in res.stderr and "examples:" in res.stderr
