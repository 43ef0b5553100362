"""A parameter's trip from the command line through a reconstruction: the orchestrator
(``app/engine/pipeline.py``) calls each stage's module once, in the order the data flows, and no stage calls
back into the orchestrator or into another stage (docs/architecture.md, "Data flow"). A long input is a loop
around the stages: there each stage is visited once per loop iteration.

How the trip is recorded (``sys.setprofile`` over ``mum-reconstruct --json`` on a few TUM photos):

* the **drivers** are the orchestrator and the long-input loops (``app/engine/chunked.py``,
  ``app/engine/sequence.py``); every Python call is attributed to a **stage**: a call a driver makes into another
  ``app/engine`` module starts a stage, named by that module; everything called below it, at any depth and in
  any module (``sfm``, ``camera_fusion``, ``dense_fit``, ``multiview_stereo``, numpy, torch, …), belongs to that
  stage — helpers called within a stage are not a re-entry. What the stages pass each other (:data:`SHARED`: the
  result, given cameras, options, progress and memory tools) is not a stage;
* a **visit** is a run of consecutive calls of one driver into one module (``plan_views`` then
  ``Plan.one_pass`` is one visit to ``planning``); the orchestrator handing the views to a loop is a visit to
  that loop;
* **one pass** (default path: SfM cameras, stereo dense stage): the orchestrator's visits must be exactly
  :data:`DATA_FLOW`, each module once (the orchestrator alone is re-entered: it is where each stage returns);
* **chunked** (``--window``): the orchestrator visits ``planning`` then ``chunked``; one loop iteration is one
  chunk (``chunked._run_chunk``), whose visits are the one pass's after the plan: its views, the network, the
  cameras, the dense geometry, each once; the joins and the pose graph visit none of those stages;
* **sequence** (``--sequence on``): the orchestrator visits ``planning`` then ``sequence``, whose stages run one
  after another, each a loop: the network once per window, the keyframe SfM once per keyframe chunk, the dense
  geometry once per window (it maps with :mod:`app.engine.sfm` directly: the cameras stage's placement of
  views SfM missed is the sequence's own PnP registration);
* a stage calling a driver's own function, or a module of another stage of the trip, breaks the rule as much as a
  second visit does (a lambda or method a driver handed the stage, a progress line, is part of the stage);
* ``view_source`` is the input itself: its visit is a driver decoding views, and any stage may ask it for their
  names and sizes (the planning does) without breaking the rule;
* ``stage_clock`` times the stages: the drivers' laps of it between stages are no visit (:data:`SHARED`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENGINE = str(ROOT / "app" / "engine") + "/"
ORCHESTRATOR = "pipeline"
LOOPS = ("chunked", "sequence")  # the long-input loops around the stages
DRIVERS = (ORCHESTRATOR, *LOOPS)
VIEWS = sorted((ROOT / "demo" / "tum_freiburg" / "images").iterdir())
# views → (the plan) → the network → cameras → dense geometry; the cloud is the result's, made by the exports
DATA_FLOW = ["planning", "view_source", "network", "cameras", "dense_geometry"]
STAGES = {"planning", "network", "cameras", "dense_geometry"}
INPUT = {"view_source"}  # the input itself: any stage may ask it for its views' names and sizes
# what the stages pass each other (the result, given cameras, options) and the run's tools (progress bars,
# memory, the stage clock): a driver's call into them is not a visit to a stage
SHARED = {"reconstruction", "known_cameras", "options", "dense_options", "runtime", "frame_store",
          "stage_clock"}


class TripRecorder:
    """The profile function: the visits of the drivers (the orchestrator and the long-input loops) into engine
    modules, per driver module (``trips``) and per call of a driver's function (``calls``), and the calls that
    break the stage rule. A ``<lambda>`` in a driver's file is a callback it handed a stage (a progress line): it
    runs as part of that stage."""

    def __init__(self) -> None:
        self.trips: dict[str, list[str]] = {}
        self.calls: list[tuple[str, list[str]]] = []  # (module.function of a driver, the visits it made itself)
        self.breaches: list[str] = []
        self._stack: list[tuple[object, str | None, int | None]] = []  # (engine frame, its stage, its call's index)

    @staticmethod
    def _module(filename: str) -> str:
        return filename[len(ENGINE):].removesuffix(".py").replace("/", ".")

    def _visit(self, visits: list[str], module: str) -> None:
        if not visits or visits[-1] != module:
            visits.append(module)

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
        module, name = self._module(filename), frame.f_code.co_name
        top = self._stack[-1] if self._stack else None
        current = top[1] if top else None
        from_driver = top is not None and top[2] is not None and top[0] is frame.f_back
        if module in DRIVERS and current is None:  # a driver runs (the CLI's call, or a driver's)
            if from_driver and not self.calls[top[2]][0].startswith(module + "."):
                self._record(top[2], module)  # the orchestrator hands the views to a loop
            self.calls.append((f"{module}.{name}", []))
            self._stack.append((frame, None, len(self.calls) - 1))
            return
        if module in DRIVERS:  # within a stage: a callback it was handed, unless the stage calls a driver's function
            caller = frame.f_back
            if (self._is_function_of(module, frame.f_code) and caller is not None
                    and self._module(caller.f_code.co_filename) not in DRIVERS):
                self.breaches.append(f"stage {current} calls {module}.{name}")
            stage = current
        elif from_driver:  # a driver calls a module
            if module not in SHARED:
                self._record(top[2], module)
            stage = module
        else:
            stage = current
            if (stage is not None and stage not in SHARED and module != stage and module in STAGES
                    and module not in INPUT):
                self.breaches.append(f"stage {stage} calls stage {module} ({name})")
        self._stack.append((frame, stage, None))

    def _record(self, index: int, module: str) -> None:
        driver, own = self.calls[index]
        self._visit(self.trips.setdefault(driver.split(".")[0], []), module)
        self._visit(own, module)

    @staticmethod
    def _is_function_of(module: str, code) -> bool:
        """Whether ``code`` is one of ``module``'s own functions (not a lambda, generator or method it handed on)."""
        function = getattr(sys.modules.get(f"app.engine.{module}"), code.co_name, None)
        return getattr(function, "__code__", None) is code

    def own_visits(self, function: str) -> list[list[str]]:
        """The visits each call of a driver's ``function`` (``module.function``) made itself, call by call."""
        return [visits for called, visits in self.calls if called == function]


def run_cli(args: list[str]) -> tuple[TripRecorder, dict]:
    """``mum-reconstruct ARGS --json`` under the recorder: the recorder and the run's summary."""
    import io
    from contextlib import redirect_stdout

    recorder = TripRecorder()
    out = io.StringIO()
    sys.setprofile(recorder)
    try:
        with redirect_stdout(out):
            status = main([*args, "--json"])
    finally:
        sys.setprofile(None)
    assert status == 0
    return recorder, json.loads(out.getvalue())


def test_the_cli_runs_each_stage_once_in_data_flow_order(tmp_path):
    recorder, summary = run_cli([*map(str, VIEWS[:8:2]), "-o", str(tmp_path / "scene")])  # 4 views, every other frame
    assert summary["mode"] == "default" and summary["cameras"]["sfm"] >= 2  # the default path ran: SfM cameras
    assert summary["stereo"]["views_matched"] == 4 and summary["stereo"]["size"] == summary["depth_size"]  # --json reports it
    assert recorder.trips["pipeline"] == DATA_FLOW, f"the orchestrator's visits: {recorder.trips['pipeline']}"
    assert not recorder.breaches, "\n".join(recorder.breaches)


def test_the_chunked_path_runs_each_stage_once_per_chunk(tmp_path):
    """``--window 4 --overlap 2`` on 6 photos: two chunks. The orchestrator plans, then hands the views to the
    chunked loop; each chunk (:func:`app.engine.chunked._run_chunk`, one loop iteration) decodes its views and
    visits the network, the cameras and the dense geometry once each, in that order; the joins, the pose graph
    and the assembly visit none of those stages."""
    recorder, summary = run_cli([*map(str, VIEWS[:6]), "-o", str(tmp_path / "scene"), "--window", "4",
                                 "--overlap", "2"])
    assert summary["chunks"]["count"] == 2 and summary["cameras"]["sfm"] >= 2
    assert recorder.trips["pipeline"] == ["planning", "chunked"], recorder.trips["pipeline"]
    chunks = recorder.own_visits("chunked._run_chunk")
    assert chunks == [DATA_FLOW[1:]] * 2, f"each chunk's visits: {chunks}"
    outside = [(f, v) for f, visits in recorder.calls if f.startswith("chunked.") and f != "chunked._run_chunk"
               for v in visits if v in STAGES - {"planning"}]
    assert not outside, f"the loop visits a stage outside its iterations: {outside}"
    assert not recorder.breaches, "\n".join(recorder.breaches)


def test_the_sequence_path_runs_each_stage_once_per_window_and_chunk(tmp_path):
    """``--sequence on --window 4`` on 8 photos: two network windows, one keyframe chunk. The orchestrator plans,
    then hands the frames to the sequence loop, whose stages run one after another, each a loop of its own: the
    network once per window (:func:`app.engine.sequence._network`: the window's frames decoded, one pass), the
    keyframe SfM once per keyframe chunk (:func:`app.engine.sequence._map_chunk`: :mod:`app.engine.sfm` directly,
    not the one-pass cameras stage), then the dense geometry once per window
    (:func:`app.engine.sequence._dense`)."""
    recorder, summary = run_cli([*map(str, VIEWS[:8]), "-o", str(tmp_path / "scene"), "--sequence", "on",
                                 "--window", "4"])
    windows, chunks = summary["sequence"]["windows"], len(summary["sequence"]["chunks"])
    assert windows == 2 and chunks == 1 and summary["cameras"]["sfm"] >= 2
    assert recorder.trips["pipeline"] == ["planning", "sequence"], recorder.trips["pipeline"]
    assert recorder.own_visits("sequence._network") == [["view_source", "network"] * windows]
    assert recorder.own_visits("sequence._map_chunk") == [["view_source", "sfm"]] * chunks
    dense = recorder.own_visits("sequence._dense")
    assert [[v for v in visits if v in STAGES] for visits in dense] == [["dense_geometry"] * windows], dense
    order = [f for f, _ in recorder.calls if f in ("sequence._network", "sequence._map_chunk", "sequence._dense")]
    assert order == ["sequence._network", *["sequence._map_chunk"] * chunks, "sequence._dense"], order
    assert not recorder.breaches, "\n".join(recorder.breaches)


def test_the_recorder_sees_a_second_visit_and_calls_across_stages():
    """The recorder on a hand-made call tree: an orchestrator frame calling a stage twice (with another
    between), a stage calling another stage's module, a stage calling the orchestrator's own function, and a
    stage calling back a lambda the orchestrator handed it (allowed: a progress line)."""
    import app.engine.pipeline as pipeline

    recorder = TripRecorder()

    class Code:
        def __init__(self, filename, name="f"):
            self.co_filename, self.co_name = filename, name

    class Frame:
        def __init__(self, code, back=None):
            self.f_code, self.f_back = code, back

    def frame(module, back=None, name="f"):
        return Frame(Code(ENGINE + f"{module}.py", name), back)

    top = frame(ORCHESTRATOR, name="reconstruct_views")
    recorder(top, "call", None)
    for module in ("network", "cameras", "network"):
        stage = frame(module, top)
        recorder(stage, "call", None)
        if module == "cameras":
            helper = frame("sfm", stage)
            recorder(helper, "call", None)
            for callee in (frame("dense_geometry", helper), frame(ORCHESTRATOR, helper, "<lambda>"),
                           Frame(pipeline.reconstruct_arrays.__code__, helper)):
                recorder(callee, "call", None)
                recorder(callee, "return", None)
            recorder(helper, "return", None)
        recorder(stage, "return", None)
    assert recorder.trips == {"pipeline": ["network", "cameras", "network"]}
    assert recorder.breaches == ["stage cameras calls stage dense_geometry (f)",
                                 "stage cameras calls pipeline.reconstruct_arrays"]
