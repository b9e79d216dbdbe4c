"""EquiGen stage 1: the equivariant weight-space encoder and its contrastive pre-training."""
