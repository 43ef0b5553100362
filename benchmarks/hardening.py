"""Issue 26's adversarial inputs, each run as a fresh ``mum-reconstruct`` process under ``/usr/bin/time -v``:
exit status, the last line of stderr, wall seconds and peak RSS, against a normal run of the same kind (the
same model, size and kind of input: the tiny model on three photos for the cameras-file and pixel rows, the
same 20-frame video unpatched for the video rows, the default model for the model rows). ``ok``: the exit status
expected (0 for the video rows, which must give a correct result; 2 and exactly one ``error:`` line for the
refusals), no traceback. The web row (a COLMAP upload whose ``points3D.bin`` claims 2^40 points) runs against a
``mum-web`` process: its peak RSS (``VmHWM``) after a normal request and after the hostile one.

Run: ``python benchmarks/hardening.py`` (about 3 minutes on 2 cores); writes
``benchmarks/results/hardening_cpu.json``. Each row's ``rss_ratio`` is its peak RSS over its normal run's
(issue 26 asks for at most 1.5), ``rss_vs_error`` over that of refusing a missing weights file.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.provenance import start_run, write_results  # noqa: E402

TUM = ROOT / "demo" / "tum_freiburg" / "images"
FAST = ["--fast", "--model", "mum-tiny", "--size", "64", "--quiet"]


def timed(argv: list[str], cwd: Path) -> dict:
    """``mum-reconstruct argv`` under GNU time: exit status, last stderr line, seconds, peak RSS (MiB)."""
    report = cwd / "time.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(report), sys.executable, "-m", "app.cli", *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd)})
    seconds = time.perf_counter() - start
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text()).group(1))
    lines = proc.stderr.strip().splitlines()
    return {"exit": proc.returncode, "stderr_lines": len(lines), "last_line": lines[-1][:300] if lines else "",
            "traceback": "Traceback" in proc.stderr, "seconds": round(seconds, 2),
            "peak_rss_mib": round(rss_kib / 1024, 1)}


def make_inputs(folder: Path) -> dict:
    """Every input the cases need, written under ``folder``."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from heads.registry import PRESETS
    from test_fuzz_readers import _colmap_model
    from test_hardening import _claim_avi_frames, _mkv_duration, _png_header_bomb, _video

    images = folder / "images"
    images.mkdir()
    for p in sorted(TUM.glob("*.png"))[::4][:3]:
        shutil.copy(p, images / p.name)
    names = sorted(p.name for p in images.iterdir())
    out = {"images": images}
    cams = [{"name": n, "width": 640, "height": 480, "K": [[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]],
             "cam_from_world": np.eye(4).tolist()} for n in names]

    def write(name: str, text: str) -> Path:
        path = folder / name
        path.write_text(text)
        return path

    out["deep_json"] = write("deep.json", "[" * 100_000 + "]" * 100_000)
    out["width_1e400"] = write("w.json", json.dumps({"images": [{**cams[0], "width": "@"}]}).replace('"@"', "1e400"))
    out["focal_1e-300"] = write("f.json", json.dumps({"images": [{**cams[0], "K": [[1e-300, 0, 319.5],
                                                                                  [0, 1e-300, 239.5], [0, 0, 1]]}]}))
    out["translation_1e308"] = write("t.json", json.dumps({"images": [{**cams[0], "cam_from_world": [
        [1, 0, 0, 1e308], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}))
    out["angle_wide"] = write("a.json", json.dumps({"camera_angle_x": "wide", "frames": [
        {"file_path": names[0], "transform_matrix": np.eye(4).tolist(), "w": 640, "h": 480}]}))
    for case, fill in (("points3D_2e40", struct.pack("<Q", 2**40)), ("name_without_nul", None)):
        model = folder / case / "sparse" / "0"
        _colmap_model(cams, model)
        for text in model.glob("*.txt"):
            text.unlink()
        if fill is not None:
            (model / "points3D.bin").write_bytes(fill)
        else:
            data = (model / "images.bin").read_bytes()
            (model / "images.bin").write_bytes(data[: data.index(names[-1].encode()) + len(names[-1])] + b"x" * 200)
        out[case] = model
    out["video_normal"] = _video(folder / "normal.avi", 20)
    out["avi_2e32"] = _claim_avi_frames(_video(folder / "a32.avi", 20), 2**32 - 1)
    out["avi_2e25"] = _claim_avi_frames(_video(folder / "a25.avi", 20), 2**25)
    out["mkv_1e13"] = _mkv_duration(_video(folder / "m13.mkv", 20), 1e12)
    out["mkv_no_duration"] = _mkv_duration(_video(folder / "nodur.mkv", 50), None)
    out["mkv_short_duration"] = _mkv_duration(_video(folder / "short.mkv", 100), 1.0)
    bomb = folder / "bomb"
    _png_header_bomb(bomb / "big.png", 16_000)
    shutil.copy(images / names[0], bomb / names[0])
    out["png_256mpx"] = bomb

    def model_file(name: str, config: dict | str) -> Path:
        path = folder / name
        text = config if isinstance(config, str) else json.dumps(config)
        save_file({"w": torch.zeros(4)}, str(path), metadata={"mum.kind": "reconstructor", "mum.config": text})
        return path

    tiny = json.loads(json.dumps(PRESETS["mum-tiny"].to_dict()))
    deep_encoder = json.loads(json.dumps(tiny))
    deep_encoder["encoder"]["depth"] = 100_000
    out["config_depth_100000"] = model_file("deep.safetensors", deep_encoder)
    vitl16 = json.loads(json.dumps(PRESETS["mum-vitl16"].to_dict()))
    out["config_vitl16_tiny_file"] = model_file("vitl.safetensors", vitl16)
    out["config_nested"] = model_file("nested.safetensors", "[" * 100_000 + "]" * 100_000)
    raw = folder / "raw.pt"
    raw.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    out["raw_pickle"] = raw
    return out


def cli_cases(inp: dict, folder: Path) -> list[tuple[str, str | None, list]]:
    """``(case, baseline, argv)``: each case's baseline is a normal run of its kind (the same model, size and
    kind of input, unpatched); the baselines are cases too. ``error_missing_model`` (a missing weights file)
    is the peak RSS of any refusal, for reference."""
    o = folder / "out"
    img = inp["images"]
    fast, default = "normal_fast", "normal_default_model"
    cases = [
        ("normal_fast", None, [img, "-o", o / "f.ply", *FAST]),
        ("normal_video", None, [inp["video_normal"], "-o", o / "v.json", "--max-frames", "5", *FAST]),
        ("normal_default_model", None, [img, "-o", o / "d.ply", "--fast", "--quiet"]),
        ("error_missing_model", None, [img, "-o", o / "e.ply", "--fast", "--quiet", "--model",
                                       folder / "missing.safetensors"]),
        ("row1_deep_json", fast, [img, "-o", o / "1.ply", "--cameras", inp["deep_json"], *FAST]),
        ("row2_width_1e400", fast, [img, "-o", o / "2.ply", "--cameras", inp["width_1e400"], *FAST]),
        ("row2_camera_angle_wide", fast, [img, "-o", o / "2b.ply", "--cameras", inp["angle_wide"], *FAST]),
        ("row3_focal_1e-300", fast, [img, "-o", o / "3.ply", "--cameras", inp["focal_1e-300"], *FAST]),
        ("row3_translation_1e308", fast, [img, "-o", o / "3b.ply", "--cameras", inp["translation_1e308"],
                                          "--fix-poses", *FAST]),
        ("row4_points3D_2e40", fast, [img, "-o", o / "4.ply", "--cameras", inp["points3D_2e40"], *FAST]),
        ("row4_name_without_nul", fast, [img, "-o", o / "4b.ply", "--cameras", inp["name_without_nul"], *FAST]),
        ("row8_avi_2e32_max_frames_5", "normal_video", [inp["avi_2e32"], "-o", o / "8.json", "--max-frames", "5",
                                                        *FAST]),
        ("row8_avi_2e25_max_frames_5", "normal_video", [inp["avi_2e25"], "-o", o / "8b.json", "--max-frames", "5",
                                                        *FAST]),
        ("row8_mkv_1e13_max_frames_5", "normal_video", [inp["mkv_1e13"], "-o", o / "8c.json", "--max-frames", "5",
                                                        *FAST]),
        ("row9_mkv_without_duration", "normal_video", [inp["mkv_no_duration"], "-o", o / "9.json", "--max-frames",
                                                       "5", *FAST]),
        ("row10_mkv_duration_1s_100_frames", "normal_video", [inp["mkv_short_duration"], "-o", o / "10.json",
                                                              "--max-frames", "5", *FAST]),
        ("row11_256mpx_max_pixels_2e8", fast, [inp["png_256mpx"], "-o", o / "11.ply", "--max-pixels", "2e8",
                                               *FAST]),
        ("row12_config_depth_100000", default, [img, "-o", o / "12.ply", "--model", inp["config_depth_100000"],
                                                "--fast", "--quiet"]),
        ("row12_vitl16_config_in_tiny_file", default, [img, "-o", o / "12b.ply", "--model",
                                                       inp["config_vitl16_tiny_file"], "--fast", "--quiet"]),
        ("row13_config_nested_100000", default, [img, "-o", o / "13.ply", "--model", inp["config_nested"],
                                                 "--fast", "--quiet"]),
        ("row21_raw_pickle_weights", default, [img, "-o", o / "21.ply", "--model", "mum-tiny", "--weights",
                                               inp["raw_pickle"], "--fast", "--quiet"]),
    ]
    return cases


def _vmhwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))


def web_case(inp: dict, folder: Path) -> dict:
    """Row 5: ``mum-web``'s peak RSS after a normal fast request, then after the 2^40-point COLMAP upload."""
    from gradio_client import Client, handle_file
    from web_support import free_port, wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(folder))
    proc = subprocess.Popen([sys.executable, "-m", "app.web.server", "--port", str(port), "--model", "mum-tiny", "--size",
                             "64", "--quiet"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(folder / "downloads"))
        photos = [handle_file(str(p)) for p in sorted(inp["images"].iterdir())]
        client.predict(photos, True, api_name="/reconstruct")
        normal = _vmhwm_mib(proc.pid)
        model = inp["points3D_2e40"]
        cameras = [handle_file(str(model / f"{n}.bin")) for n in ("cameras", "images", "points3D")]
        start = time.perf_counter()
        try:
            client.predict(photos, True, cameras, False, api_name="/reconstruct")
            message = ""
        except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
            message = str(exc).strip().splitlines()[-1][:300]
        seconds = time.perf_counter() - start
        hostile = _vmhwm_mib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"case": "row5_web_colmap_points3D_2e40", "baseline_peak_rss_mib": round(normal, 1),
            "ok": "points3D.bin: not a valid COLMAP binary file" in message and code == 128 + signal.SIGTERM,
            "peak_rss_mib": round(hostile, 1), "rss_ratio": round(hostile / normal, 3), "seconds": round(seconds, 2),
            "message": message, "server_exit_on_sigterm": code}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hardening_cpu.json"))
    p.add_argument("--no-web", action="store_true", help="skip the web row")
    args = p.parse_args(argv)
    run = start_run(argv)
    with tempfile.TemporaryDirectory(prefix="mum-hardening-") as d:
        folder = Path(d)
        (folder / "out").mkdir()
        inp = make_inputs(folder)
        rows: dict[str, dict] = {}
        for case, baseline, case_argv in cli_cases(inp, folder):
            work = folder / f"run-{case}"
            work.mkdir()
            row = {"case": case, "baseline": baseline, **timed(case_argv, work)}
            row["tmpdir_left"] = sorted(p.name for p in work.iterdir() if p.name != "time.txt")
            if baseline is not None:
                row["rss_ratio"] = round(row["peak_rss_mib"] / rows[baseline]["peak_rss_mib"], 3)
                row["rss_vs_error"] = round(row["peak_rss_mib"] / rows["error_missing_model"]["peak_rss_mib"], 3)
            expected = 0 if case.startswith(("normal", "row8", "row9", "row10")) else 2
            row["ok"] = (row["exit"] == expected and not row["traceback"]
                         and (expected == 0 or (row["stderr_lines"] == 1 and row["last_line"].startswith("error: "))))
            rows[case] = row
            print(f"{case:36s} exit {row['exit']:3d} {row['seconds']:6.1f} s {row['peak_rss_mib']:7.1f} MiB "
                  f"ratio {row.get('rss_ratio', 1):.2f}  {row['last_line'][:90]}", flush=True)
        web = None if args.no_web else web_case(inp, folder)
        if web is not None:
            print(json.dumps(web), flush=True)
    worst = max(r["rss_ratio"] for r in rows.values() if "rss_ratio" in r)
    results = {"cases": list(rows.values()), "web": web, "worst_cli_rss_ratio": worst,
               "worst_rss_ratio": max(worst, web["rss_ratio"] if web else 0),
               "all_ok": all(r["ok"] for r in rows.values()) and (web is None or web["ok"]),
               "rows": sum(1 for r in rows.values() if "rss_ratio" in r),
               "note": "each case a fresh process (imports, model load); peak RSS from GNU time (CLI) or VmHWM (web)"}
    write_results(args.out, results, run)
    print(f"worst peak-RSS ratio {results['worst_rss_ratio']:.2f}; all as expected: {results['all_ok']}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
