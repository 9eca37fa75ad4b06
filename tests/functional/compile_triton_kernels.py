"""Compile every variant of the Triton kernels for a GPU architecture without a GPU (Triton's ahead-of-time
``triton.compile`` down to PTX and, through the bundled ptxas, a cubin), so that a machine without CUDA still
finds the errors that Triton's interpreter lets pass (types, layouts, unsupported constructs).

Run with ``TRITON_INTERPRET`` unset: ``python tests/functional/compile_triton_kernels.py [ARCH ...]`` (default 90).
Prints one line per architecture; also checks that the fp32 neuron keeps the step reference's two roundings (no
fused multiply-add in its PTX) and, as a control, that Triton does fuse them when allowed to.
"""

import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ttfs_lab.functional import triton_kernels as tk

NEURON = {"T": "i32", "planes": "i32", "H": "i32", "W": "i32"}
FORWARD = {"I": "*{dt}", "P": "*{dt}", "X": "*{dt}", **NEURON, "theta": "fp32", "lam": "fp32", "scale": "fp32"}
BACKWARD = {"G": "*{dt}", "X": "*{dt}", "OUT": "*{dt}", **NEURON, "lam": "fp32", "alpha": "fp32"}
STD_FORWARD = {"Wp": "*fp32", "Gam": "*fp32", "OUT": "*fp32", "MEAN": "*fp32", "RSTD": "*fp32", "K": "i32",
               "std": "fp32", "eps": "fp32"}
STD_BACKWARD = {"Wp": "*fp32", "Gam": "*fp32", "G": "*fp32", "MEAN": "*fp32", "RSTD": "*fp32", "DW": "*fp32",
                "DGAM": "*fp32", "K": "i32", "std": "fp32"}


def compile_one(fn, signature: dict, constexprs: dict, arch: int, fp_fusion: bool = False):
    src = ASTSource(fn=fn, signature={**signature, **{k: "constexpr" for k in constexprs}}, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": fp_fusion})


def typed(signature: dict, dtype: str) -> dict:
    return {k: v.format(dt=dtype) for k, v in signature.items()}


def compile_all(arch: int) -> int:
    count = 0
    for dtype in ("fp32", "bf16", "fp16"):
        for k in (1, 2, 3):
            tile = tk._tiling(1, k, k, k)[1]  # K, KKP and BLOCK exactly as the wrappers launch them
            for const in (False, True):
                for save in (False, True):
                    compile_one(tk._forward, typed(FORWARD, dtype),
                                {"CONST": const, "SAVE": save, "SIGMOID": save, **tile}, arch)
                    count += 1
                for code in tk.SURROGATE_CODES.values():
                    compile_one(tk._backward, typed(BACKWARD, dtype), {"CONST": const, "SURROGATE": code, **tile}, arch)
                    count += 1
    for affine in (False, True):
        for K in (9, 6272):
            block = tk._row_block(K)
            compile_one(tk._standardize_forward, STD_FORWARD, {"AFFINE": affine, "BLOCK": block}, arch)
            compile_one(tk._standardize_backward, STD_BACKWARD, {"AFFINE": affine, "BLOCK": block}, arch)
            count += 2
    return count


def has_fma(arch: int, fp_fusion: bool) -> bool:
    tile = tk._tiling(1, 1, 1, 1)[1]
    kernel = compile_one(tk._forward, typed(FORWARD, "fp32"), {"CONST": False, "SAVE": True, "SIGMOID": True, **tile},
                         arch, fp_fusion)
    return "fma.rn.f32" in kernel.asm["ptx"]


if __name__ == "__main__":
    assert not tk.INTERPRET, "unset TRITON_INTERPRET: the interpreter does not compile"
    for arch in [int(a) for a in sys.argv[1:]] or [90]:
        n = compile_all(arch)
        assert not has_fma(arch, fp_fusion=False) and has_fma(arch, fp_fusion=True)
        print(f"sm_{arch}: {n} kernel variants compiled; no fused multiply-add in the fp32 neuron")
