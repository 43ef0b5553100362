"""The reconstruction engine: views in, a :class:`~app.engine.reconstruction.Reconstruction` out.

The orchestrator (``pipeline``) calls one module per stage, in the order the data flows: the plan
(``planning``), views (``view_source``), the network (``network``), cameras (``cameras``: ``sfm`` with
``pair_selection``, ``known_cameras``, ``camera_fusion``), dense geometry (``dense_geometry``: ``dense_fit``;
multi-view stereo: ``view_selection``, ``stereo``, ``depth_fusion``, run by ``multiview_stereo``); the cloud is
the result's (``reconstruction``, ``point_budget``). Every stage's options: ``options``. Long inputs are a loop
around the same stages (``chunked``, ``pose_graph``); videos and numbered frames take the sequence path
(``sequence``: ``keyframes``, ``frame_tracks``, ``keyframe_map``, ``frame_registration``, ``frame_store``).
The engine imports nothing from :mod:`app.exports` or the front ends."""
