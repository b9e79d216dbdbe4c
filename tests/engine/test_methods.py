"""The one table of generation methods: what each samples and what D does to it."""

from __future__ import annotations

import pytest

from engine.diffusion.methods import (
    GENERATION_METHODS, METHODS, TRAINING_METHODS, check_method, depends_on_diversity, methods_for,
)
from engine.errors import InputError


def test_every_method_samples_a_trained_kind_or_only_the_shots():
    assert set(GENERATION_METHODS) == set(METHODS)
    for m in METHODS.values():
        assert m.samples in TRAINING_METHODS or m.samples is None
        assert not m.conditioned or m.samples == "equigen"  # only EquiGen models carry an encoder
        assert not m.blends or m.conditioned  # a blend interpolates encoder features


def test_a_model_offers_its_own_methods_first_and_the_shots_baseline():
    assert methods_for("equigen") == ("equigen", "equigen-no-perturb", "shots-noise")
    assert methods_for("hyperdiffusion") == ("hyperdiffusion", "shots-noise")


def test_diversity_moves_a_method_only_where_it_can():
    assert depends_on_diversity("equigen", widens=False) and depends_on_diversity("shots-noise", widens=False)
    assert not depends_on_diversity("equigen-no-perturb", widens=True)
    # HyperDiffusion has no condition to move: D acts only through a prior that widens
    assert depends_on_diversity("hyperdiffusion", widens=True)
    assert not depends_on_diversity("hyperdiffusion", widens=False)


@pytest.mark.parametrize("name, model, shots, blend, needle", [
    ("equigen", "hyperdiffusion", True, False, "trained as 'hyperdiffusion'"),
    ("hyperdiffusion", "equigen", True, False, "trained as 'equigen'"),
    ("equigen", "equigen", False, False, "needs shots"),
    ("shots-noise", "hyperdiffusion", False, False, "needs shots"),
    ("shots-noise", "equigen", True, True, "cannot blend"),
    ("sketch", "equigen", True, False, "unknown generation method"),
])
def test_a_method_the_model_cannot_run_is_refused_with_what_to_use(name, model, shots, blend, needle):
    with pytest.raises(InputError, match=needle):
        check_method(name, model, shots, blend)
    assert check_method("shots-noise", model, True).name == "shots-noise"
