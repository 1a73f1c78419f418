"""The DGL bridge (dgl_tgnn/_dgl.py): real DGL works through it; a clean DGL is left untouched."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_message_passing_through_bridged_dgl_matches_dense_reference():
    pytest.importorskip("dgl")
    from dgl_tgnn._dgl import dgl

    torch.manual_seed(0)
    # Block: 3 dst nodes, 5 src nodes; dst 2 has no in-edge.
    src = torch.tensor([0, 3, 4, 1, 3])
    dst = torch.tensor([0, 0, 0, 1, 1])
    block = dgl.create_block((src, dst), num_src_nodes=5, num_dst_nodes=3)
    h = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    score = torch.randn(5, 1, dtype=torch.float64, requires_grad=True)

    attn = dgl.nn.functional.edge_softmax(block, score)
    block.srcdata["h"] = h
    block.edata["a"] = attn
    block.update_all(dgl.function.u_mul_e("h", "a", "m"), dgl.function.sum("m", "out"))
    out = block.dstdata["out"]

    expected = torch.zeros(3, 4, dtype=torch.float64)
    for d in range(3):
        edges = (dst == d).nonzero().flatten()
        if len(edges):
            weights = torch.softmax(score[edges, 0], dim=0)
            expected[d] = (weights[:, None] * h[src[edges]]).sum(0)
    torch.testing.assert_close(out, expected)

    grads = torch.autograd.grad(out.square().sum(), (h, score))
    expected_grads = torch.autograd.grad(expected.square().sum(), (h, score))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def _write_fake_dgl(root: Path, graphbolt_tail: str, with_library: bool) -> None:
    pkg = root / "dgl"
    (pkg / "graphbolt").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import sys
            FINDERS = [type(f).__name__ for f in sys.meta_path]
            from . import graphbolt
            """
        )
    )
    (pkg / "graphbolt" / "__init__.py").write_text(f"LOADER = type(__loader__).__name__\n{graphbolt_tail}\n")
    if with_library:
        version = torch.__version__.split("+")[0]
        (pkg / "graphbolt" / f"libgraphbolt_pytorch_{version}.so").write_bytes(b"")


def _import_through_bridge(root: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import sys
        from dgl_tgnn._dgl import bridged, dgl
        print(dgl.FINDERS, dgl.graphbolt.LOADER, bridged)
        print(any(type(f).__name__ == "_OptionalGraphboltFinder" for f in sys.meta_path))
        """
    )
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{REPO}")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)


def test_clean_dgl_is_imported_untouched(tmp_path):
    _write_fake_dgl(tmp_path, "", with_library=True)
    result = _import_through_bridge(tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "_OptionalGraphboltFinder" not in first
    assert first.endswith("SourceFileLoader False")
    assert second == "False"  # nothing left on sys.meta_path


def test_missing_graphbolt_library_is_tolerated(tmp_path):
    _write_fake_dgl(
        tmp_path,
        'raise FileNotFoundError("Cannot find DGL C++ graphbolt library at /nowhere.so")',
        with_library=False,
    )
    result = _import_through_bridge(tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "_OptionalGraphboltFinder" in first
    assert first.endswith("_OptionalGraphboltLoader True")
    assert second == "False"  # the finder is removed after the import


def test_other_graphbolt_errors_still_raise(tmp_path):
    _write_fake_dgl(tmp_path, 'raise FileNotFoundError("some other file is missing")', with_library=False)
    result = _import_through_bridge(tmp_path)
    assert result.returncode != 0
    assert "some other file is missing" in result.stderr
