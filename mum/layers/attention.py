"""The project's one scaled-dot-product attention function and the multi-head attention module.

Every transformer block in the project (MuM encoder/decoder, aggregator, camera head, DINOv2 patch
embedding) calls :func:`attention`. Backends:

* ``xformers``: xformers ``memory_efficient_attention`` (CUDA only);
* ``cudnn``: PyTorch ``scaled_dot_product_attention`` with its cuDNN kernel first (priority cuDNN, flash,
  memory-efficient, math: the fastest on Hopper; shapes cuDNN cannot take go to the next kernel);
* ``sdpa``: PyTorch ``scaled_dot_product_attention`` with PyTorch's own kernel order;
* ``math``: explicit softmax(q kᵀ / √d) v, the reference the others are tested against.

The request comes from the ``backend`` argument, else the ``MUM_ATTENTION`` environment variable, else
``auto``. Backends are *verified, not assumed*: the first time a request meets a (device type, dtype, head
dim), the candidate backend runs on a tiny input and must match :func:`math_attention`; the verdict is cached
for the process. ``auto`` takes the first candidate that passes: on CUDA ``xformers`` (when it imports),
``cudnn``, ``sdpa``; on the CPU ``sdpa``. An xformers that imports but whose kernel fails (a wheel built for
another torch) gives one ``warning:`` line on stderr naming the versions, and ``auto`` falls back; an explicit
request that cannot run raises :class:`AttentionBackendError` (a :class:`mum.errors.UserError`: front ends print
one ``error:`` line). Under ``torch.compile`` the backend is chosen when the graph is traced and stays baked in.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Literal, Optional, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError, one_line

Backend = Literal["auto", "xformers", "cudnn", "sdpa", "math"]
BACKENDS: tuple[str, ...] = ("auto", "xformers", "cudnn", "sdpa", "math")
ENV_VAR = "MUM_ATTENTION"
# tolerance of a backend's trial output against math_attention in float32, per dtype (outputs are O(1))
TRIAL_ATOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
TRIAL_SHAPE = (1, 2, 24, None)  # [B, heads, tokens, head_dim]: head_dim is the real one


class AttentionBackendError(UserError):
    """An attention backend that was asked for by name (``MUM_ATTENTION``) cannot run here, or the name is unknown."""


# ------------------------------------------------------------------------------------------------ xformers
@functools.lru_cache(maxsize=1)
def _xformers_ops():
    """``xformers.ops``, imported once and quietly (a mismatched build logs a multi-line warning on import; the
    verification below reports it in one line), or None when it does not import."""
    quiet = logging.getLogger("xformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import xformers.ops as xops  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    finally:
        quiet.setLevel(level)
    return xops


def xformers_available() -> bool:
    """True when ``xformers.ops`` imports (which does not mean its kernels run: see :func:`backend_works`)."""
    return _xformers_ops() is not None


def xformers_versions() -> str:
    """``xformers 0.0.35 (built for torch 2.10.0+cu128), torch 2.11.0+cu130 installed``: the installed
    xformers, the torch its binary was built for (its ``cpp_lib.json``, as ``python -m xformers.info`` reports
    it; "an unknown torch" where it has none) and the installed torch."""
    xformers = sys.modules.get("xformers")
    version = getattr(xformers, "__version__", "unknown")
    built_for = "an unknown torch"
    try:
        meta = json.loads((Path(xformers.__file__).parent / "cpp_lib.json").read_text())
        built_for = f"torch {meta['version']['torch']}"
    except (AttributeError, TypeError, OSError, ValueError, KeyError):
        pass
    return f"xformers {version} (built for {built_for}), torch {torch.__version__} installed"


# ------------------------------------------------------------------------------------------------ kernels
def math_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Explicit softmax(q kᵀ / √d) v, the reference the fused kernels are tested against."""
    scale = q.shape[-1] ** -0.5
    weights = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
    return weights @ v


def _sdpa_priority(first_only: bool = False) -> contextlib.AbstractContextManager:
    """SDPA's kernels with cuDNN first (``first_only``: cuDNN alone, to verify that it runs)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if first_only:
        return sdpa_kernel([SDPBackend.CUDNN_ATTENTION])
    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # torch < 2.6 has no priority order: cuDNN is then only one of the kernels allowed
        return sdpa_kernel(order)


def _run(backend: str, q: Tensor, k: Tensor, v: Tensor, verifying: bool = False) -> Tensor:
    """``backend``'s kernel on ``[B, heads, N, d]`` tensors."""
    if backend == "xformers":
        xops = _xformers_ops()
        if xops is None:
            raise RuntimeError("xformers does not import")
        # xformers works on [B, N, heads, d]
        return xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    if backend == "cudnn":
        with _sdpa_priority(first_only=verifying):
            return F.scaled_dot_product_attention(q, k, v)
    if backend == "math":
        return math_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


# ------------------------------------------------------------------------------------------ verification
_VERDICTS: dict[tuple[str, str, torch.dtype, int], Optional[str]] = {}  # (backend, device type, dtype, d) → None or why not
_CHOICES: dict[tuple[str, str, torch.dtype, int], str] = {}  # (request, device type, dtype, d) → backend
_WARNED: set[str] = set()


def _print_warning(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


warn: Callable[[str], None] = _print_warning  # where the one-line warnings go (stderr; tests replace it)


def candidates(device_type: str) -> list[str]:
    """What ``auto`` tries on ``device_type``, fastest first."""
    if device_type == "cuda":
        return (["xformers"] if xformers_available() else []) + ["cudnn", "sdpa", "math"]
    return ["sdpa", "math"]


def _trial(backend: str, device_type: str, dtype: torch.dtype, head_dim: int) -> Optional[str]:
    """Run ``backend`` on a tiny seeded input and compare it with :func:`math_attention` in float32; None when it
    works, else why not (one line)."""
    key = (backend, device_type, dtype, head_dim)
    if key in _VERDICTS:
        return _VERDICTS[key]
    if backend == "xformers" and not xformers_available():
        verdict: Optional[str] = "xformers is not installed (or does not import)"
    elif backend == "cudnn" and device_type != "cuda":
        verdict = f"cuDNN attention needs a CUDA device, not {device_type}"
    else:
        g = torch.Generator().manual_seed(0)
        shape = (*TRIAL_SHAPE[:3], head_dim)
        q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
        ref = math_attention(q, k, v)
        try:
            with torch.inference_mode(), torch.autocast(device_type, enabled=False):  # the dtype under test, as given
                out = _run(backend, *(t.to(device_type, dtype) for t in (q, k, v)), verifying=True).float().cpu()
            err = (out - ref).abs().max().item() if out.shape == ref.shape else float("inf")
            tol = TRIAL_ATOL.get(dtype, 3e-2)
            verdict = None if err <= tol else f"its output differs from the reference by {err:.3g} (> {tol:g})"
        except Exception as exc:  # noqa: BLE001 - any failure of the kernel means "does not work here"
            first = (str(exc).strip().splitlines() or [""])[0]
            verdict = f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
    _VERDICTS[key] = verdict
    return verdict


def backend_verdict(backend: str, device_type: str = "cuda", dtype: torch.dtype = torch.float32,
                    head_dim: int = 64) -> Optional[str]:
    """None when ``backend``'s kernel runs here and matches the reference, else why not (verified once, cached)."""
    return _trial(backend, device_type, dtype, head_dim)


def backend_works(backend: str, device_type: str = "cuda", dtype: torch.dtype = torch.float32, head_dim: int = 64) -> bool:
    """Whether ``backend``'s kernel runs and matches the reference here (verified once, cached)."""
    return backend_verdict(backend, device_type, dtype, head_dim) is None


def _describe_failure(backend: str, why: str) -> str:
    if backend == "xformers" and xformers_available():
        return f"the xformers attention kernel does not run: {why} ({xformers_versions()}; install the pair the Dockerfile pins)"
    return f"attention backend {backend!r} does not run: {why}"


def _warn_once(topic: str, message: str) -> None:
    if topic not in _WARNED:
        _WARNED.add(topic)
        warn(f"warning: {one_line(message)}")


def _choose(request: str, device_type: str, dtype: torch.dtype, head_dim: int) -> str:
    """The verified backend for ``request`` on tensors of this kind (cached). Under ``torch.compile`` this runs
    once while tracing and its answer is a constant of the graph."""
    key = (request, device_type, dtype, head_dim)
    if key in _CHOICES:
        return _CHOICES[key]
    if request != "auto":
        why = _trial(request, device_type, dtype, head_dim)
        if why is not None:
            raise AttentionBackendError(f"{ENV_VAR}={request}: {_describe_failure(request, why)}; use {ENV_VAR}=auto or sdpa")
        chosen = request
    else:
        failed: dict[str, str] = {}
        for backend in candidates(device_type):
            why = _trial(backend, device_type, dtype, head_dim)
            if why is None:
                chosen = backend
                break
            failed[backend] = why
        else:
            raise AttentionBackendError(f"no attention backend runs on {device_type} {dtype}: {failed}")
        if "xformers" in failed:  # installed (it is a candidate) but broken: say so once, then fall back
            _warn_once("xformers", f"{_describe_failure('xformers', failed['xformers'])}; using {chosen} attention instead")
    _CHOICES[key] = chosen
    return chosen


def choice_constant_under_compile() -> None:
    """Tell ``torch.compile`` that :func:`_choose`'s answer is a constant of the graph (traced once, baked in).
    Called by :func:`~mum.layers.compile.compile_blocks` only: marking it imports ``torch._dynamo``, whose import
    creates torch's compile cache folder in ``$TMPDIR``, which a run that compiles nothing must not leave behind."""
    torch.compiler.assume_constant_result(_choose)


def clear_backend_cache() -> None:
    """Forget every verdict, choice and warning (tests; after installing or removing xformers in-process)."""
    _VERDICTS.clear()
    _CHOICES.clear()
    _WARNED.clear()
    _xformers_ops.cache_clear()


def chosen_backends() -> dict[str, str]:
    """What this process has used so far: ``{"cuda bfloat16 d=64": "cudnn", ...}`` (self-check, benchmarks)."""
    return {f"{dev} {str(dtype).removeprefix('torch.')} d={d}" + ("" if req == "auto" else f" ({req})"): chosen
            for (req, dev, dtype, d), chosen in _CHOICES.items()}


def requested_backend(backend: Optional[str] = None) -> str:
    """The backend asked for: ``backend``, else ``$MUM_ATTENTION``, else ``auto``; an unknown name is an error."""
    name = (backend or os.environ.get(ENV_VAR) or "auto").lower()
    if name not in BACKENDS:
        raise AttentionBackendError(f"unknown attention backend {name!r} ({ENV_VAR}); choose one of {', '.join(BACKENDS)}")
    return name


def resolve_backend(q: Tensor, backend: Optional[str] = None) -> str:
    """The concrete, verified backend (``xformers``, ``cudnn``, ``sdpa`` or ``math``) used for tensors like ``q``."""
    return _choose(requested_backend(backend), q.device.type, q.dtype, int(q.shape[-1]))


def attention(q: Tensor, k: Tensor, v: Tensor, backend: Optional[str] = None) -> Tensor:
    """softmax(q kᵀ / √d) v for ``q, k, v`` of shape ``[B, heads, N, d]``; returns ``[B, heads, N, d]``."""
    return _run(resolve_backend(q, backend), q, k, v)


class RotaryEmbedding(Protocol):
    """Anything that rotates queries and keys ``[B, heads, N, d]`` by their token positions."""

    def __call__(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]: ...


class Attention(nn.Module):
    """Multi-head self-attention: fused ``qkv`` projection, optional QK-LayerNorm, optional RoPE.

    Key layout (``qkv``, ``q_norm``, ``k_norm``, ``proj``) matches DINOv2/DINOv3/VGGT/MuM checkpoints.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        qk_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, rope: Optional[RotaryEmbedding] = None) -> Tensor:
        """``x`` ``[B, N, C]`` → ``[B, N, C]``."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rope(q, k)
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))
