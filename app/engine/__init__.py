"""The reconstruction engine: views in, a :class:`~app.engine.reconstruction.Reconstruction` out.

Stages, in the order the data flows: views (``view_source``), the network (``pipeline``), cameras (``sfm`` with
``pair_selection``, ``known_cameras``, ``camera_fusion``; ``geometric_reconstruction`` runs them), dense geometry
(``dense_fit``; multi-view stereo: ``view_selection``, ``stereo``, ``depth_fusion``, run by ``multiview_stereo``),
the cloud (``point_budget``). Long inputs are a loop around the same stages (``chunked``, ``pose_graph``); videos
and numbered frames take the sequence path (``sequence``: ``keyframes``, ``frame_tracks``, ``keyframe_map``,
``frame_registration``). The engine imports nothing from :mod:`app.exports` or the front ends."""
