"""From user input to a :class:`~app.engine.reconstruction.Reconstruction`: preprocess, predict, then (unless
``fast``) cameras from SfM and dense depth fitted to them.

Shared by the command-line tool, the web app and the benchmarks (one implementation for all).

Default path (:func:`reconstruct_arrays`):

1. the network predicts cameras, depth, confidence and a retrieval descriptor per view (one pass);
2. SfM from scratch (:mod:`app.engine.sfm`): SIFT, matching of all pairs up to ``exhaustive_up_to`` views and of the
   network-guided pairs beyond (:mod:`app.engine.pair_selection`), incremental mapping with the network's focal
   length as the initial one;
3. views SfM did not register get the network's camera placed by a similarity fitted on the registered ones
   (:mod:`app.engine.camera_fusion`); with fewer than two registered views the network's cameras are used alone
   (one warning line);
4. the dense stage (``options.dense``, :mod:`app.engine.dense_options`): each view's network depth is fitted to the
   SfM points it sees (:mod:`app.engine.dense_fit`); by default it is then the prior of multi-view stereo on the SfM
   cameras (:mod:`app.engine.multiview_stereo`), or (``fitted``) upsampled and kept where another view's depth agrees;
   the SfM points join the cloud.

``fast`` stops after step 1.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from app.engine.cameras import add_cameras, keep_network_cameras
from app.engine.dense_geometry import add_dense_geometry, network_consistency
from app.engine.known_cameras import KnownCameras
from app.engine.network import predict_arrays
from app.engine.options import PipelineOptions
from app.engine.reconstruction import Reconstruction


def reconstruct_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    long_side: Optional[int] = None,
    device: str = "cpu",
    chunk_size: Optional[int] = None,
    on_stage: Optional[Callable[[str], None]] = None,
    options: PipelineOptions = PipelineOptions(),
    warn: Optional[Callable[[str], None]] = None,
    known: Optional[KnownCameras] = None,
) -> Reconstruction:
    """Reconstruct ``uint8`` RGB views (original size) with ``model`` (a ``heads.Reconstructor``) and, unless
    ``options.fast``, SfM and dense fitting; returns the scene in user conventions. ``on_stage``: progress
    lines; ``warn``: the one warning line when the cameras fall back to the network alone; ``known``: given or
    EXIF intrinsics and poses to keep (:mod:`app.engine.known_cameras`)."""
    say = on_stage or (lambda _msg: None)
    recon, transforms, descriptors = predict_arrays(model, names, arrays, long_side, device, chunk_size, say)
    if options.fast:
        keep_network_cameras(recon, known, say)
        if options.fast_consistency:
            recon.meta["consistency"] = network_consistency(recon, options)
        return recon
    fit = add_cameras(recon, arrays, descriptors, options, say, warn or say, known)
    add_dense_geometry(recon, arrays, transforms, fit.sfm, fit.points, fit.depth_scale, options, say)
    return recon
