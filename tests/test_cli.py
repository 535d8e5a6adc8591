import subprocess
import sys

import pytest

import hybridunet
from hybridunet.cli import build_parser, main


def test_models_command_prints_params_gflops_and_descriptions(capsys):
    assert main(["models", "--filter", "*unet*", "--size", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "params (M)" in lines[0] and "GFLOPs @ 3x64x64" in lines[0] and "description" in lines[0]
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in lines[1:]}
    assert {"hybrid_unet", "hybrid_unet_resdec", "smp_unet", "unet"} <= set(rows)
    assert float(rows["unet"][0]) > 7 and float(rows["unet"][1]) > 0
    assert "residual-SE decoder" in rows["hybrid_unet_resdec"][2]


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "hybridunet", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"hybridunet {hybridunet.__version__}"


def test_help_and_parsing_import_no_torch_and_a_unet_needs_neither_smp_nor_timm():
    code = (
        "import sys\n"
        "from hybridunet.cli import build_parser\n"
        "p = build_parser()\n"
        "for argv in (['train', '--config', 'x.yaml', 'train.epochs=2'], ['compare', '--experiment', 'e'],\n"
        "             ['data', 'synth', '--out', 'd'], ['eval', '--checkpoint', 'c']):\n"
        "    p.parse_known_args(argv)\n"
        "import hybridunet\n"
        "heavy = ('torch', 'timm', 'segmentation_models_pytorch', 'mlflow', 'optuna')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "hybridunet.create_model('unet')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['torch']"]


def test_every_command_answers_help(capsys):
    parser = build_parser()
    for argv in (["--help"], *([c, "--help"] for c in ("models", "train", "eval", "predict", "tune", "compare",
                                                        "demo", "data")), ["data", "synth", "--help"]):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        assert stop.value.code == 0
    assert "key=value" in capsys.readouterr().out


def test_a_user_error_is_one_line_and_a_bug_shows_its_traceback(tiny_yaml, tmp_path, capsys, monkeypatch):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.yaml not found" in err
    from hybridunet.errors import ConfigError

    with pytest.raises(ConfigError):  # --debug shows the traceback of a user error too
        main(["train", "--config", str(tmp_path / "nope.yaml"), "--debug"])

    def bug(*args, **kwargs):
        raise ValueError("a programming error deep in training")

    monkeypatch.setattr("hybridunet.engine.fit", bug)
    with pytest.raises(ValueError, match="programming error"):
        main(["train", "--config", str(tiny_yaml)])


def test_data_synth_calls_the_generator_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "synth", "--out", str(out), "--train", "2", "--val", "1", "--size", "32"]) == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == ["1.jpg", "2.jpg"]
    assert main(["data", "synth", "--out", str(out), "--train", "2", "--val", "1", "--size", "32"]) == 2
    assert "already holds synthetic data (3 files; generator version 2, seed 0, size 32" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(out), "--train", "1", "--val", "1", "--size", "32", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == ["1.jpg"]  # the old pairs are gone, not mixed in


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


BAD_INPUTS = {
    # what a user typed -> what the one line must name
    "missing checkpoint": (["eval", "--checkpoint", "typo.safetensors"], "checkpoint typo.safetensors not found"),
    "corrupt checkpoint": (["eval", "--checkpoint", "{corrupt}"], "is not a readable safetensors file"),
    "pickle checkpoint": (["eval", "--checkpoint", "{pickle}"], "checkpoints are .safetensors files"),
    "missing config": (["train", "--config", "nope.yaml"], "nope.yaml not found"),
    "bad override value": (["train", "--config", "{tiny}", "train.epochs=abc"], "train.epochs"),
    "unknown override key": (["train", "--config", "{tiny}", "trian.epochs=2"], "trian: unknown key"),
    "override without a key": (["train", "--config", "{tiny}", "=3"], "=3"),
    "missing data root": (["train", "--config", "{tiny}", "data.root=no-such-data"], "no-such-data"),
    "unknown model": (["train", "--config", "{tiny}", "model.name=unet3"], "unknown model 'unet3'"),
    "bad --seeds": (["compare", "--configs", "{tiny}", "{tiny}", "--seeds", "x"], "--seeds x: expected a count"),
    "repeated seed": (["compare", "--configs", "{tiny}", "{tiny}", "--seeds", "1", "1"], "listed more than once"),
    "unknown search key": (["tune", "--config", "{tiny}", "--search", "{space}", "--trials", "1",
                            "--storage", "sqlite:///optuna-walk.db"], "optim.lrr"),
    "existing output folder": (["train", "--config", "{tiny}", "data.root={data}", "train.out_dir={mine}"],
                               "already exists"),
    "missing predict input": (["predict", "--checkpoint", "{ckpt}", "--input", "nowhere", "--out", "p"],
                              "input nowhere does not exist"),
    "onnx without sidecar": (["predict", "--model", "{onnx}", "--input", "{image}", "--out", "p"],
                             "model.onnx.json not found"),
    "missing stats data": (["data", "stats", "--data", "no-data"], "no-data"),
    "bad opset": (["export", "--checkpoint", "{ckpt}", "--opset", "3"], "--opset 3"),
    "unknown experiment": (["compare", "--experiment", "nope", ], "no MLflow experiment named 'nope'"),
    "seeds and a cap": (["compare", "--configs", "{tiny}", "{tiny}", "--seeds", "3", "--max-seeds", "6"],
                        "give one of them"),
    "test metric without a test split": (["compare", "--configs", "{tiny}", "{tiny}", "--max-seeds", "4",
                                          "--metric", "test_dice", "data.root={data}", "tracking.enabled=false"],
                                         "--metric test_dice needs a test split"),
    "first look after the cap": (["compare", "--configs", "{tiny}", "{tiny}", "--max-seeds", "2", "--min-seeds", "3"],
                                 "need 2 <= min-seeds <= max-seeds"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_input_is_one_line_exit_2_no_traceback_and_nothing_written(case, tiny_yaml, tiny_data, mlflow_store,
                                                                            make_checkpoint, tmp_path, capsys,
                                                                            monkeypatch):
    import cv2
    import numpy as np

    work = tmp_path / "work"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    (inputs / "model.pt").write_bytes(b"\x80\x04K\x01.")
    (inputs / "model.onnx").write_bytes(b"\x08\x07")
    cv2.imwrite(str(inputs / "frame.png"), np.zeros((16, 16, 3), np.uint8))
    (inputs / "space.yaml").write_text("params:\n  optim.lrr: {type: float, low: 0.001, high: 0.01}\n")
    (inputs / "mine").mkdir()
    (inputs / "mine" / "notes.txt").write_text("mine")
    ckpt = make_checkpoint(inputs, "unet")
    values = {"tiny": tiny_yaml, "corrupt": inputs / "corrupt.safetensors", "pickle": inputs / "model.pt",
              "space": inputs / "space.yaml", "mine": inputs / "mine", "ckpt": ckpt, "onnx": inputs / "model.onnx",
              "image": inputs / "frame.png", "data": tiny_data}
    argv, named = BAD_INPUTS[case]
    argv = [a.format(**values) for a in argv]
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    before = _files(inputs)
    capsys.readouterr()
    assert main(argv) == 2, case
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hybridunet {argv[0]}: error: "), err
    assert named in err and "Traceback" not in err, err
    assert _files(work) == []
    assert _files(inputs) == before and (inputs / "mine" / "notes.txt").read_text() == "mine"


def test_an_internal_error_shows_its_traceback_and_exits_1(tiny_yaml, tmp_path):
    """A bug, even one raising ValueError (which user errors also derive from), is no user
    error: it is not turned into one line."""
    code = ("import sys, hybridunet.engine as engine\n"
            "def bug(*a, **k):\n    raise ValueError('a programming error deep in training')\n"
            "engine.fit = bug\nfrom hybridunet.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "train", "--config", str(tiny_yaml),
                           "tracking.enabled=false"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ValueError: a programming error" in proc.stderr
