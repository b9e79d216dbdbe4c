"""Weight-space tools: symmetries of MLP weights and their augmentations."""
