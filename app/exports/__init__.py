"""Files and pictures made from a reconstruction: the project's own formats (PLY, GLB, cameras.json, depth maps),
COLMAP and nerfstudio models, snapshots and colour-mapped maps. Exports import the engine's result types only."""
