"""Generation metrics: image features and distribution distances (2D), Chamfer-based set metrics
(3D), and the novelty rule both share. Pure functions over arrays; the harness is ``engine.bench``."""
