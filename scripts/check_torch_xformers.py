"""Fail a build whose xformers binary was not built for the installed torch (the Dockerfile runs this).

    python scripts/check_torch_xformers.py --torch 2.10.0 --xformers 0.0.35 --cuda 12.8

Reads what ``python -m xformers.info`` reports (``pytorch.version``, ``build.torch_version``,
``build.cuda_version``) and checks, printing one line either way (exit status 1 on a problem):

* the installed torch and xformers are the pinned versions (``--torch``, ``--xformers``), torch built for
  CUDA ``--cuda``;
* the torch the xformers binary was built for is the installed torch, local version (``+cu128``) included:
  an xformers wheel built for another torch imports but its attention kernel raises on the first request;
* the pair is one of :data:`KNOWN_PAIRS`.

:data:`KNOWN_PAIRS` records, for each xformers release the project has pinned, the torch and CUDA its Linux
wheel was built for, read from the wheel itself (``pip download --no-deps xformers==0.0.35``: the
``xformers/cpp_lib.json`` inside it, which ``xformers.info`` reports as ``build.torch_version``; its METADATA
only says ``Requires-Dist: torch>=2.10``, which does not pin the build). tests/test_docker.py checks that the
Dockerfile's pins are such a pair.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

# xformers release -> (torch it was built for, CUDA) as read from the PyPI wheel's xformers/cpp_lib.json
KNOWN_PAIRS: dict[str, tuple[str, str]] = {
    "0.0.35": ("2.10.0+cu128", "12.8"),  # xformers-0.0.35-py39-none-manylinux_2_28_x86_64.whl: torch 2.10.0+cu128, cuda 1208
}


def parse_info(text: str) -> dict[str, str]:
    """``python -m xformers.info``'s ``name:   value`` lines as a dict (its first line is ``xFormers X.Y.Z``)."""
    info = {}
    lines = text.splitlines()
    if lines and lines[0].startswith("xFormers "):
        info["xformers.version"] = lines[0].split(" ", 1)[1].strip()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            info[name.strip()] = value.strip()
    return info


def cuda_from_build(value: str) -> str:
    """xformers' ``build.cuda_version`` (``1208``) as torch spells it (``12.8``)."""
    number = int(value)
    return f"{number // 100}.{number % 100}"


def problems(info: dict[str, str], torch_cuda: str | None, want_torch: str, want_xformers: str, want_cuda: str) -> list[str]:
    """What is wrong with the installed pair (empty when nothing is)."""
    found = []
    torch_version = info.get("pytorch.version", "?")
    built_for = info.get("build.torch_version")
    xformers_version = info.get("xformers.version", "?")
    if torch_version.split("+")[0] != want_torch:
        found.append(f"torch {torch_version} is installed, the pin is {want_torch}")
    if xformers_version != want_xformers:
        found.append(f"xformers {xformers_version} is installed, the pin is {want_xformers}")
    if torch_cuda != want_cuda:
        found.append(f"torch is built for CUDA {torch_cuda or 'none (a CPU build)'}, the image needs {want_cuda}")
    if built_for is None:
        found.append("xformers reports no build information (build.torch_version)")
    elif built_for != torch_version:
        found.append(f"xformers {xformers_version} was built for torch {built_for}, but torch {torch_version} is installed")
    build_cuda = info.get("build.cuda_version")
    if build_cuda not in (None, "None") and cuda_from_build(build_cuda) != torch_cuda:
        found.append(f"xformers was built for CUDA {cuda_from_build(build_cuda)}, torch for CUDA {torch_cuda}")
    known = KNOWN_PAIRS.get(want_xformers)
    if known is None:
        found.append(f"xformers {want_xformers} is not in KNOWN_PAIRS: read its wheel's cpp_lib.json and add it")
    elif (f"{want_torch}+cu{want_cuda.replace('.', '')}", want_cuda) != known:
        found.append(f"xformers {want_xformers} was built for torch {known[0]} (CUDA {known[1]}), not {want_torch} with CUDA {want_cuda}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch", required=True, help="the pinned torch version, without the local part (2.10.0)")
    p.add_argument("--xformers", required=True, help="the pinned xformers version (0.0.35)")
    p.add_argument("--cuda", required=True, help="the CUDA version torch must be built for (12.8)")
    args = p.parse_args(argv)
    result = subprocess.run([sys.executable, "-m", "xformers.info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"error: python -m xformers.info failed: {last}", file=sys.stderr)
        return 1
    import torch

    info = parse_info(result.stdout)
    found = problems(info, torch.version.cuda, args.torch, args.xformers, args.cuda)
    if found:
        print(f"error: torch/xformers mismatch: {'; '.join(found)}", file=sys.stderr)
        return 1
    print(f"ok: xformers {info['xformers.version']} built for torch {info['build.torch_version']}, "
          f"torch {info['pytorch.version']} (CUDA {torch.version.cuda}) installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
