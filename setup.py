"""Build of dgl-tgnn and its extension ``dgl_tgnn._C``.

CUDA sources (``csrc/cuda/*.cu``) are compiled when torch has CUDA and nvcc is found.
``DGL_TGNN_CUDA=1`` forces them on (and fails clearly if impossible), ``DGL_TGNN_CUDA=0`` off.
"""

import glob
import os

import torch
from setuptools import find_packages, setup
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


def extension() -> CppExtension:
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/core/*.cpp"))
    cxx = ["-O3", "-std=c++17", "-fopenmp"]
    args = dict(include_dirs=[os.path.abspath("csrc")], extra_link_args=["-fopenmp"])
    if build_with_cuda():
        nvcc = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
        return CUDAExtension(
            "dgl_tgnn._C",
            sources + sorted(glob.glob("csrc/cuda/*.cu")),
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"], "nvcc": nvcc},
            **args,
        )
    return CppExtension("dgl_tgnn._C", sources, extra_compile_args={"cxx": cxx}, **args)


setup(
    name="dgl-tgnn",
    version="0.1.0",
    description="Fast temporal GNN training (TGAT, TGN) on DGL, with exact temporal sampling "
    "and fused top-K hard negatives",
    python_requires=">=3.10",
    packages=find_packages(include=["dgl_tgnn", "dgl_tgnn.*"]),
    package_data={"dgl_tgnn.data": ["builtin/*"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    install_requires=["torch>=2.1", "dgl>=2.1", "numpy", "pandas", "click", "tqdm", "pyyaml", "matplotlib"],
    entry_points={"console_scripts": ["dgl-tgnn=dgl_tgnn.cli:main"]},
)
