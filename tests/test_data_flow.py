"""A parameter's trip from the command line through a default-path reconstruction: the orchestrator
(``app/engine/pipeline.py``) calls each stage's module once, in the order the data flows, and no stage calls
back into the orchestrator or into another stage (docs/architecture.md, "Data flow").

How the trip is recorded (``sys.setprofile`` over ``mum-reconstruct`` on four TUM photos, default path: SfM
cameras, stereo dense stage):

* every Python call is attributed to a **stage**: a call the orchestrator makes into another ``app/engine``
  module starts a stage, named by that module; everything called below it, at any depth and in any module
  (``sfm``, ``camera_fusion``, ``dense_fit``, ``multiview_stereo``, numpy, torch, …), belongs to that stage —
  helpers called within a stage are not a re-entry;
* a **visit** is a run of consecutive orchestrator calls into one module (``plan_views`` then ``Plan.one_pass``
  is one visit to ``planning``);
* the trip is the list of visits. It must be exactly :data:`DATA_FLOW`, each module once (the orchestrator
  alone is re-entered: it is where each stage returns). A stage module calling the orchestrator, or a module of
  another stage of the trip, breaks the rule as much as a second visit does;
* ``view_source`` is the input itself: its visit is the orchestrator decoding the views, and any stage may ask
  it for their names and sizes (the planning does) without breaking the rule;
* ``stage_clock`` times the stages: the orchestrator's laps of it between stages are no visit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENGINE = str(ROOT / "app" / "engine") + "/"
ORCHESTRATOR = ENGINE + "pipeline.py"
VIEWS = sorted((ROOT / "demo" / "tum_freiburg" / "images").iterdir())[:8:2]  # 4 views, every other frame
# views → (the plan) → the network → cameras → dense geometry; the cloud is the result's, made by the exports
DATA_FLOW = ["planning", "view_source", "network", "cameras", "dense_geometry"]
INPUT = {"view_source"}  # the input itself: any stage may ask it for its views' names and sizes
CLOCK = "stage_clock"  # times the stages (app/engine/stage_clock.py): no stage of the data flow


class TripRecorder:
    """The profile function: visits of the orchestrator into engine modules, and calls that break the stage rule."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        self.breaches: list[str] = []
        self._stack: list[tuple[object, str | None]] = []  # (engine frame, its stage) while it runs

    @staticmethod
    def _module(filename: str) -> str:
        return filename[len(ENGINE):].removesuffix(".py").replace("/", ".")

    def __call__(self, frame, event, _arg) -> None:
        filename = frame.f_code.co_filename
        if not filename.startswith(ENGINE):
            return
        if event == "return":
            if self._stack and self._stack[-1][0] is frame:
                self._stack.pop()
            return
        if event != "call":
            return
        caller = frame.f_back
        from_orchestrator = caller is not None and caller.f_code.co_filename == ORCHESTRATOR
        current = self._stack[-1][1] if self._stack else None
        if filename == ORCHESTRATOR:
            stage = None
            if current is not None:
                self.breaches.append(f"stage {current} calls the orchestrator ({frame.f_code.co_name})")
        elif from_orchestrator and self._module(filename) == CLOCK:
            stage = None
        elif from_orchestrator:
            stage = self._module(filename)
            if not self.visits or self.visits[-1] != stage:
                self.visits.append(stage)
        else:
            stage = current
            module = self._module(filename)
            if stage is not None and module != stage and module in DATA_FLOW and module not in INPUT:
                self.breaches.append(f"stage {stage} calls stage {module} ({frame.f_code.co_name})")
        self._stack.append((frame, stage))


def test_the_cli_runs_each_stage_once_in_data_flow_order(tmp_path, capsys):
    recorder = TripRecorder()
    sys.setprofile(recorder)
    try:
        status = main([*map(str, VIEWS), "-o", str(tmp_path / "scene"), "--json"])
    finally:
        sys.setprofile(None)
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "default" and summary["cameras"]["sfm"] >= 2  # the default path ran: SfM cameras
    assert recorder.visits == DATA_FLOW, f"the orchestrator's visits: {recorder.visits}"
    assert not recorder.breaches, "\n".join(recorder.breaches)


def test_the_recorder_sees_a_second_visit_and_a_call_across_stages():
    """The recorder on a hand-made call tree: an orchestrator frame calling a stage twice (with another
    between) and a stage calling another stage's module."""
    recorder = TripRecorder()

    class Code:
        def __init__(self, filename, name="f"):
            self.co_filename, self.co_name = filename, name

    class Frame:
        def __init__(self, filename, back=None):
            self.f_code, self.f_back = Code(filename), back

    top = Frame(ORCHESTRATOR)
    recorder(top, "call", None)
    for module in ("network", "cameras", "network"):
        stage = Frame(ENGINE + f"{module}.py", top)
        recorder(stage, "call", None)
        if module == "cameras":
            helper = Frame(ENGINE + "sfm.py", stage)
            recorder(helper, "call", None)
            across = Frame(ENGINE + "dense_geometry.py", helper)
            recorder(across, "call", None)
            recorder(across, "return", None)
            recorder(helper, "return", None)
        recorder(stage, "return", None)
    assert recorder.visits == ["network", "cameras", "network"]
    assert recorder.breaches == ["stage cameras calls stage dense_geometry (f)"]
