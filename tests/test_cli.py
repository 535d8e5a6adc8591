import subprocess
import sys

import hybridunet
from hybridunet.cli import main


def test_models_command_prints_params_and_gflops(capsys):
    assert main(["models", "--filter", "*unet", "--size", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "params (M)" in lines[0] and "GFLOPs @ 3x64x64" in lines[0]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {"hybrid_unet", "smp_unet", "unet"}
    assert float(rows["unet"][0]) > 7 and float(rows["unet"][1]) > 0


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "hybridunet", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"hybridunet {hybridunet.__version__}"
