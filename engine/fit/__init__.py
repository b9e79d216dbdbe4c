"""Fitting signals into INRs: images (2D), meshes (3D), and the shared batched loop."""
