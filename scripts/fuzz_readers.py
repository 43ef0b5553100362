"""Fuzz the camera file readers (all formats) and the model-config reader for a time budget.

The same properties and strategies as ``tests/test_fuzz_readers.py`` (which runs a few dozen examples of each in
the default suite), run in rounds of ``--round`` examples per property with fixed seeds (``--seed``, +1 per
round) until ``--minutes`` have passed; stops at the first failure and prints the falsifying example.

    nice -n 10 python scripts/fuzz_readers.py --minutes 30 --seed 0 --out benchmarks/results/fuzz_readers_cpu.json

Prints one line per round and a last line with the example counts per property; ``--out`` writes them with the
run's provenance (commit, command, machine, load). The process may map at most ``--memory-gib`` more than it
maps once torch is imported (a soft address-space limit: a blow-up fails with a MemoryError).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="time budget (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first round (default 0)")
    p.add_argument("--round", type=int, default=200, help="examples per property per round (default 200)")
    p.add_argument("--out", default=None, help="write the counts as JSON here (with the run's provenance)")
    p.add_argument("--memory-gib", type=float, default=4.0,
                   help="address space beyond what it maps once torch is imported (default 4)")
    args = p.parse_args(argv)

    import resource

    from benchmarks.provenance import start_run, write_results

    run_info = start_run(argv)

    from hypothesis import HealthCheck, given, seed, settings

    import torch  # noqa: F401 - mapped before the limit is taken

    import test_fuzz_readers as fuzz

    cap = fuzz._mapped_bytes() + int(args.memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))

    properties = [("cameras", fuzz.json_files(), fuzz.check_json_file),
                  ("colmap", fuzz.colmap_models(), fuzz.check_colmap_model),
                  ("config", fuzz.model_configs(), fuzz.check_model_config)]
    start = time.monotonic()
    rounds = 0
    while time.monotonic() - start < args.minutes * 60:
        for name, strategy, check in properties:
            run = seed(args.seed + rounds)(settings(max_examples=args.round, deadline=None, database=None,
                                                    suppress_health_check=list(HealthCheck))(given(strategy)(check)))
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - hypothesis has printed the falsifying example
                print(f"FAILED in round {rounds} ({name}, seed {args.seed + rounds}): {type(exc).__name__}: {exc}",
                      flush=True)
                return 1
        rounds += 1
        print(f"round {rounds}: {dict(fuzz.EXAMPLES)} after {time.monotonic() - start:.0f} s", flush=True)
    result = {"examples": dict(fuzz.EXAMPLES), "examples_total": sum(fuzz.EXAMPLES.values()), "rounds": rounds,
              "seconds": round(time.monotonic() - start), "seed": args.seed, "round": args.round, "failures": 0,
              "address_space_limit_gib": round(cap / 2**30, 2)}
    print(json.dumps(result))
    if args.out:
        write_results(args.out, result, run_info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
