"""Build of the extension ``dgl_tgnn._C`` of dgl-tgnn (metadata: pyproject.toml).

Build it against the installed torch: ``pip install --no-build-isolation .`` (see README.md).

CUDA sources (``csrc/cuda/*.cu``) are compiled when torch has CUDA and nvcc is found.
``DGL_TGNN_CUDA=1`` forces them on (and fails clearly if impossible), ``DGL_TGNN_CUDA=0`` off.
"""

import glob
import os

try:
    import torch
except ImportError:
    raise SystemExit(
        "dgl-tgnn compiles its extension against the installed torch: install torch first (CPU or CUDA), "
        "then `pip install --no-build-isolation .`"
    ) from None
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def build_with_cuda() -> bool:
    flag = os.environ.get("DGL_TGNN_CUDA")
    possible = torch.version.cuda is not None and CUDA_HOME is not None
    if flag == "1" and not possible:
        raise RuntimeError(
            "DGL_TGNN_CUDA=1 but CUDA cannot be built: "
            f"torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME}"
        )
    if flag is not None and flag not in ("0", "1"):
        raise RuntimeError(f"DGL_TGNN_CUDA must be 0 or 1, got {flag!r}")
    return possible if flag is None else flag == "1"


def nvcc_arch_flags() -> list[str]:
    """torch's -gencode flags for its arch list, plus sm_90a code (CUDA >= 12) where it has sm_90 code.

    topk_dot's wgmma main loop (H100, H200) exists only in sm_90a code. torch adds no arch flags of
    its own once the extension's nvcc flags name one, so the whole list is given here. (The helper
    is private to torch: imported here, so that CPU-only builds never depend on it.)
    """
    from torch.utils.cpp_extension import _get_cuda_arch_flags

    flags = _get_cuda_arch_flags()
    sm90, sm90a = "-gencode=arch=compute_90,code=sm_90", "-gencode=arch=compute_90a,code=sm_90a"
    if sm90 in flags and sm90a not in flags and int(torch.version.cuda.split(".")[0]) >= 12:
        flags.append(sm90a)
    return flags


def extension() -> CppExtension:
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/core/*.cpp"))
    cxx = ["-O3", "-std=c++17", "-fopenmp"]
    args = dict(include_dirs=[os.path.abspath("csrc")], extra_link_args=["-fopenmp"])
    if build_with_cuda():
        nvcc = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo", *nvcc_arch_flags()]
        return CUDAExtension(
            "dgl_tgnn._C",
            sources + sorted(glob.glob("csrc/cuda/*.cpp") + glob.glob("csrc/cuda/*.cu")),
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"], "nvcc": nvcc},
            **args,
        )
    return CppExtension("dgl_tgnn._C", sources, extra_compile_args={"cxx": cxx}, **args)


# Metadata, dependencies and the console script are in pyproject.toml; only the extension is built here.
setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
)
