"""The one table of generation methods: what each needs from a model and what the diversity does.

Every rule about a method (which model file it samples, whether it needs shots or the encoder,
whether D moves anything, whether it widens the adapted prior, whether it can blend) is read from
here: by both samplers (``generate.py``, ``code_sample.py``), the evaluation harness and the
studio's method list.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError


@dataclass(frozen=True)
class GenerationMethod:
    name: str
    label: str  # how the studio names it
    samples: str | None  # the training method of the denoiser it runs; None: no denoiser (the shots alone)
    conditioned: bool  # conditions the denoiser on the encoder's ψ of the shots
    needs_shots: bool  # only samples an adapted model (or shots given with it)
    uses_diversity: bool  # D moves its conditions (or the shots it perturbs)
    widens_prior: bool  # D widens the adapted prior by 1 + D, in models whose domain does so
    blends: bool  # can interpolate between two shots' features


METHODS: dict[str, GenerationMethod] = {m.name: m for m in (
    GenerationMethod("equigen", "EquiGen", "equigen", conditioned=True, needs_shots=True,
                     uses_diversity=True, widens_prior=True, blends=True),
    GenerationMethod("equigen-no-perturb", "EquiGen, no perturbation", "equigen", conditioned=True,
                     needs_shots=True, uses_diversity=False, widens_prior=False, blends=True),
    GenerationMethod("hyperdiffusion", "HyperDiffusion (baseline)", "hyperdiffusion", conditioned=False,
                     needs_shots=False, uses_diversity=False, widens_prior=True, blends=False),
    GenerationMethod("shots-noise", "Shots + weight noise (baseline)", None, conditioned=False, needs_shots=True,
                     uses_diversity=True, widens_prior=False, blends=False),
)}
GENERATION_METHODS = tuple(METHODS)
TRAINING_METHODS = ("equigen", "hyperdiffusion")


def method_named(name: str) -> GenerationMethod:
    if name not in METHODS:
        raise InputError(f"unknown generation method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def depends_on_diversity(name: str, widens: bool) -> bool:
    """Whether D changes what ``name`` samples from a model that does (``widens``) or does not
    widen its adapted prior with D."""
    method = method_named(name)
    return method.uses_diversity or (method.widens_prior and widens)


def methods_for(model_method: str) -> tuple[str, ...]:
    """The generation methods a model trained with ``model_method`` can run, its own first."""
    own = [m for m in METHODS.values() if m.samples == model_method]
    return tuple(m.name for m in own) + tuple(m.name for m in METHODS.values() if m.samples is None)


def check_method(name: str, model_method: str, has_shots: bool, blend: bool = False) -> GenerationMethod:
    """The method ``name`` after checking that a model trained with ``model_method`` (with or
    without adapted shots) can run it; InputError saying what to use instead."""
    method = method_named(name)
    if method.samples is not None and method.samples != model_method:
        raise InputError(f"method {name!r} samples a model trained as {method.samples!r}, and this one was "
                         f"trained as {model_method!r}; use one of {', '.join(methods_for(model_method))}")
    if method.needs_shots and not has_shots:
        raise InputError(f"method {name!r} needs shots: adapt the model to some first")
    if blend and not method.blends:
        raise InputError(f"method {name!r} cannot blend; blending interpolates the encoder's features "
                         "of two shots (use 'equigen')")
    return method
