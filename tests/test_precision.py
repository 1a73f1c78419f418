"""``train.precision``: bf16 autocasts the forward passes (and only inside the run), tf32 is refused
off a GPU in one line, and a bf16 evaluation ranks close to, but not exactly as, float32."""

import json

import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn.cli import main
from dgl_tgnn.config import apply_overrides, default_config
from dgl_tgnn.precision import precision

QUICK = ["--max-events", "2000", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress"]
TPNET = ["--model", "tpnet", "--protocol", "tgb", "--embed-dim", "8", "--fanouts", "4", "--walk-dim", "16"]


def test_bf16_runs_the_products_in_bfloat16_and_restores_torch_settings():
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    before = torch.get_float32_matmul_precision()
    with precision("bf16", torch.device("cpu")):
        inside = layer(x)
    assert inside.dtype == torch.bfloat16
    assert layer(x).dtype == torch.float32 and torch.get_float32_matmul_precision() == before
    torch.testing.assert_close(inside.float(), layer(x), rtol=2e-2, atol=2e-2)
    with precision("float32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_tf32_turns_the_tensor_cores_on_inside_only():
    before = torch.backends.cuda.matmul.allow_tf32
    with precision("tf32", torch.device("cuda")):
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_tf32_off_a_gpu_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="--device cuda"):
        apply_overrides(default_config("tgn"), {"train.precision": "tf32"}).validate()
    with pytest.raises(ValueError, match="--device cuda"), precision("tf32", torch.device("cpu")):
        pass
    result = CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), "--precision", "tf32"])
    assert result.exit_code != 0
    assert "needs a CUDA device" in result.output and "--precision float32" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("model", [["--model", "tgn"], ["--model", "tgn", "--engine", "dense"], TPNET])
def test_a_bf16_run_trains_and_records_its_precision(tmp_path, model):
    args = ["train", "--runs-dir", str(tmp_path), "--precision", "bf16", *QUICK, *model]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]
    metric = "test_mrr" if "tpnet" in model else "test_ap"
    assert 0 < final[metric] <= 1
    assert "precision: bf16" in (run / "config.yaml").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision_name", ["tf32", "bf16"])
@pytest.mark.parametrize("model", [["--model", "tgn"], ["--model", "tgat"], TPNET])
def test_a_gpu_run_trains_at_each_precision(tmp_path, model, precision_name):
    args = ["train", "--runs-dir", str(tmp_path), "--device", "cuda", "--precision", precision_name]
    result = CliRunner().invoke(main, [*args, *QUICK, *model])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]
    assert 0 < final["test_mrr" if "tpnet" in model else "test_ap"] <= 1


def test_a_bf16_evaluation_ranks_close_to_the_float32_one(tmp_path):
    result = CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), *QUICK, *TPNET])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    metrics = {}
    for name in ("float32", "bf16"):
        args = ["evaluate", str(run), "--split", "val", "--precision", name]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        lines = result.output.strip().splitlines()
        metrics[name] = {key: float(value) for key, value in (line.split() for line in lines)}
    result = CliRunner().invoke(main, ["evaluate", str(run), "--precision", "tf32"])  # on a CPU
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "needs a CUDA device" in result.output and "--precision float32" in result.output
    assert metrics["bf16"] != metrics["float32"]  # the scores were computed in bfloat16
    assert metrics["bf16"]["val_mrr"] == pytest.approx(metrics["float32"]["val_mrr"], abs=0.05)
