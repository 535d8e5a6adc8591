"""Nothing downloads or phones home at run time: the main paths run with every
connection outside 127.0.0.1 refused (the `offline` fixture)."""

import json

import cv2
import numpy as np
import yaml

from hybridunet.cli import main


def test_train_eval_predict_and_tune_run_offline(tiny_yaml, offline, tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # default MLflow store (sqlite:///mlflow.db) and outputs/ land here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = [f"data.root={tiny_data}", "train.epochs=1"]
    assert main(["train", "--config", str(tiny_yaml), *common, "tracking.enabled=true", "train.out_dir=run"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["run_id"] and (tmp_path / "mlflow.db").is_file()
    assert result["model_uri"].startswith("models:/m-")  # tracking.log_model: onnx, logged offline

    assert main(["eval", "--checkpoint", result["checkpoint"]]) == 0
    cv2.imwrite(str(tmp_path / "street.png"), np.zeros((40, 70, 3), np.uint8))
    assert main(["predict", "--checkpoint", result["checkpoint"], "--input", "street.png", "--out", "pred"]) == 0

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}))
    assert main(["tune", "--config", str(tiny_yaml), "--search", str(space), "--trials", "2", *common,
                 "tracking.enabled=true"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["trials_finished"] == 2
