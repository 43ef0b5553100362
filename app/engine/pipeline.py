"""The orchestrator: from the user's views to a :class:`~app.engine.reconstruction.Reconstruction`, one call
into each stage's module, in the order the data flows.

Shared by the command-line tool, the web app and the benchmarks (one implementation for all). They hand it one
:class:`~app.engine.options.PipelineOptions`, one options object per stage; each stage gets its own.

:func:`reconstruct_views` (every input):

1. **plan** (:mod:`app.engine.planning`, ``options.long_input``): the sequence path for a video or numbered
   frames, one pass when every view fits in memory, else chunks;
2. a long input is a loop around the stages (docs/architecture.md says what each calls):
   :mod:`app.engine.sequence` (keyframes mapped, the other frames registered to them; it may hand the frames back
   as unordered views) or :mod:`app.engine.chunked` (each chunk the one pass's stages; chunks joined by Sim(3),
   loop closures and a pose graph);
3. one pass: :func:`reconstruct_arrays`.

:func:`reconstruct_arrays` (one pass over decoded views):

1. **network** (:mod:`app.engine.network`, ``options.network``): cameras, depth, confidence and a retrieval descriptor per view;
2. **cameras** (:mod:`app.engine.cameras`, ``options.cameras``): given and EXIF intrinsics, SfM from scratch (:mod:`app.engine.sfm`,
   pairs by :mod:`app.engine.pair_selection`), views SfM missed placed by a similarity
   (:mod:`app.engine.camera_fusion`), given poses kept; with fewer than two registered views the network's
   cameras alone (one warning line);
3. **dense geometry** (:mod:`app.engine.dense_geometry`, ``options.dense``): each view's network depth fitted to
   the SfM points it sees (:mod:`app.engine.dense_fit`), then by default the prior of multi-view stereo on those
   cameras (:mod:`app.engine.multiview_stereo`), or (``fitted``) upsampled and kept where another view's depth
   agrees;
4. **the cloud** is the result's to make, on demand and within a point budget
   (:meth:`~app.engine.reconstruction.Reconstruction.point_cloud`, :mod:`app.engine.point_budget`): the kept
   depth pixels unprojected with the exported cameras, plus the SfM points.

``fast``: the network's cameras (given intrinsics and poses applied) and its depth; the dense stage only measures
how well the views agree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from app.engine.cameras import add_cameras, keep_network_cameras
from app.engine.chunked import reconstruct_in_chunks
from app.engine.dense_geometry import add_dense_geometry, network_consistency
from app.engine.known_cameras import KnownCameras
from app.engine.network import predict_arrays
from app.engine.options import PipelineOptions
from app.engine.planning import plan_views
from app.engine.reconstruction import Reconstruction
from app.engine.sequence import SequenceOptions, reconstruct_sequence
from app.engine.stage_clock import StageClock
from app.engine.view_source import ViewSource


def reconstruct_views(
    model: Any,
    source: ViewSource,
    options: Optional[PipelineOptions] = None,
    on_stage: Optional[Callable[[str], None]] = None,
    warn: Optional[Callable[[str], None]] = None,
    known: Optional[KnownCameras] = None,
) -> Reconstruction:
    """Reconstruct every view of ``source`` with ``model`` (a ``heads.Reconstructor``); see the module docstring.
    ``options.long_input`` (:class:`~app.engine.options.LongInputOptions`) picks the path: the sequence path,
    one pass, or chunks. ``known``: given or EXIF intrinsics and poses to keep (one pass only). ``on_stage``:
    progress lines; ``warn``: warning lines."""
    options = options or PipelineOptions()
    say = on_stage or (lambda _msg: None)
    warn = warn or say
    plan = plan_views(model, source, options, known)
    if plan.sequence:
        long_input = options.long_input
        seq = SequenceOptions() if long_input.window is None else replace(SequenceOptions(), window=long_input.window)
        recon = reconstruct_sequence(model, source, options, say, warn, seq, known,
                                     continuous_only=not long_input.sequence)
        if recon is not None:
            return recon
    if plan.one_pass:
        return reconstruct_arrays(model, source.names, source.load(range(len(source))), options, say, warn, known)
    return reconstruct_in_chunks(model, source, plan, options, say, warn, known)


def reconstruct_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    options: PipelineOptions = PipelineOptions(),
    on_stage: Optional[Callable[[str], None]] = None,
    warn: Optional[Callable[[str], None]] = None,
    known: Optional[KnownCameras] = None,
) -> Reconstruction:
    """Reconstruct ``uint8`` RGB views (original size) with ``model`` (a ``heads.Reconstructor``) in one network
    pass and, unless ``options.fast``, SfM and the dense stage; returns the scene in user conventions.
    ``on_stage``: progress lines; ``warn``: the one warning line when the cameras fall back to the network alone;
    ``known``: given or EXIF intrinsics and poses to keep (:mod:`app.engine.known_cameras`)."""
    say = on_stage or (lambda _msg: None)
    clock = StageClock()
    recon, transforms, descriptors = predict_arrays(model, names, arrays, options.network, say)
    clock.lap("network")
    if options.fast:
        keep_network_cameras(recon, known, say)
        clock.lap("cameras")
        if options.fast_consistency:
            recon.meta["consistency"] = network_consistency(recon, options.dense)
        clock.lap("dense")
        recon.meta["stage_seconds"] = clock.summary()
        return recon
    fit = add_cameras(recon, arrays, descriptors, options.cameras, say, warn or say, known)
    clock.lap("cameras")
    add_dense_geometry(recon, arrays, transforms, fit.sfm, fit.points, fit.depth_scale, options.dense, say)
    clock.lap("dense")
    recon.meta["stage_seconds"] = clock.summary()
    return recon
