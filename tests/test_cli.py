import json
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
