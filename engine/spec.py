"""INR architectures as data.

An INR is a plain MLP whose weights encode one image or shape. Rather than one class per variant,
every architecture is a frozen :class:`INRSpec`; it is stored in each file's metadata, so a file
alone says how to evaluate it. The two built-ins reproduce the published INR formats exactly
(shared/docs/METHOD.md §1), so their state-dict keys and shapes interoperate with DWSNets/EquiGen
MNIST-INRs and HyperDiffusion occupancy networks.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace

from engine.errors import SpecError, clipped, shown

ACTIVATIONS = ("sine", "relu")
OUTPUTS = ("intensity", "occupancy_logit")
MAX_LAYERS = 16
MAX_WIDTH = 4096
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class INRSpec:
    """One MLP architecture for an implicit neural representation.

    in_dim: coordinate dimension (2 for images, 3 for shapes).
    hidden: widths of the hidden layers; the network has ``len(hidden) + 1`` linear layers.
    activation: ``"sine"`` (SIREN: ``sin(w0 · (Wx + b))`` on every hidden layer) or ``"relu"``.
    posenc_freqs: NeRF positional encoding with frequencies ``2^0 .. 2^(posenc_freqs-1)``
        (sin and cos, raw input first); 0 for none.
    output_offset: constant added to the last layer's output (MNIST-INR adds 0.5).
    output: ``"intensity"`` (grey value in [0, 1]) or ``"occupancy_logit"`` (inside where > 0).
    domain: coordinate range per axis, the same for all axes.
    grid_size: for 2D, the side of the pixel grid the INR is fitted on.
    param_prefix: state-dict key prefix, ``{prefix}.{i}.weight`` / ``.bias``.
    """

    name: str
    in_dim: int
    hidden: tuple[int, ...]
    out_dim: int = 1
    activation: str = "sine"
    w0: float = 30.0
    posenc_freqs: int = 0
    output_offset: float = 0.0
    output: str = "intensity"
    domain: tuple[float, float] = (-1.0, 1.0)
    grid_size: int = 28
    param_prefix: str = "seq"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # A spec comes from every file's metadata, so each field is checked for its type and a
        # range that a 28×28 image or a 3D occupancy network can use: a NaN w0 or a width of a
        # million would otherwise draw black images or take all the memory.
        def fail(what: str) -> None:
            raise SpecError(f"spec {shown(self.name)}: {what}")

        if not isinstance(self.name, str) or not 0 < len(self.name) <= 100:
            raise SpecError(f"spec name must be a string of 1 to 100 characters, not {shown(self.name)}")
        if not _is_int(self.in_dim) or self.in_dim not in (2, 3):
            fail(f"in_dim must be 2 or 3, got {shown(self.in_dim)}")
        if not isinstance(self.hidden, (list, tuple)) or not 0 < len(self.hidden) <= MAX_LAYERS \
                or not all(_is_int(h) and 0 < h <= MAX_WIDTH for h in self.hidden):
            fail(f"hidden must be 1 to {MAX_LAYERS} widths of 1 to {MAX_WIDTH}, got {shown(self.hidden)}")
        if not _is_int(self.out_dim) or not 0 < self.out_dim <= 16:
            fail(f"out_dim must be 1 to 16, got {shown(self.out_dim)}")
        if self.activation not in ACTIVATIONS:
            fail(f"activation must be one of {ACTIVATIONS}, got {shown(self.activation)}")
        if self.output not in OUTPUTS:
            fail(f"output must be one of {OUTPUTS}, got {shown(self.output)}")
        if not _is_real(self.w0) or not 0 < self.w0 <= 1e4:
            fail(f"w0 must be a number in (0, 10000], got {shown(self.w0)}")
        if not _is_int(self.posenc_freqs) or not 0 <= self.posenc_freqs <= 16:
            fail(f"posenc_freqs must be 0 to 16, got {shown(self.posenc_freqs)}")
        if not _is_real(self.output_offset) or abs(self.output_offset) > 1e3:
            fail(f"output_offset must be a number within ±1000, got {shown(self.output_offset)}")
        if not isinstance(self.domain, (list, tuple)) or len(self.domain) != 2 \
                or not all(_is_real(v) and abs(v) <= 1e3 for v in self.domain) \
                or not self.domain[0] < self.domain[1]:
            fail(f"domain must be (low, high), finite numbers within ±1000 with low < high, got {shown(self.domain)}")
        if not _is_int(self.grid_size) or not 2 <= self.grid_size <= 1024:
            fail(f"grid_size must be 2 to 1024, got {shown(self.grid_size)}")
        if not isinstance(self.param_prefix, str) or not _PREFIX.fullmatch(self.param_prefix):
            fail(f"param_prefix must be a short identifier, got {shown(self.param_prefix)}")
        if not isinstance(self.description, str):
            fail("description must be text")
        # JSON round trips give lists; the spec must stay hashable and comparable.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "domain", (float(self.domain[0]), float(self.domain[1])))
        object.__setattr__(self, "w0", float(self.w0))
        object.__setattr__(self, "output_offset", float(self.output_offset))
        object.__setattr__(self, "description", self.description[:500])

    @property
    def encoded_dim(self) -> int:
        """Width of the first layer's input after positional encoding."""
        return self.in_dim * (1 + 2 * self.posenc_freqs)

    @property
    def widths(self) -> tuple[int, ...]:
        """Input width of every layer followed by the output width."""
        return (self.encoded_dim, *self.hidden, self.out_dim)

    @property
    def num_layers(self) -> int:
        return len(self.hidden) + 1

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """State-dict keys and PyTorch ``(out, in)`` shapes, in layer order."""
        shapes = []
        w = self.widths
        for i in range(self.num_layers):
            shapes.append((f"{self.param_prefix}.{i}.weight", (w[i + 1], w[i])))
            shapes.append((f"{self.param_prefix}.{i}.bias", (w[i + 1],)))
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for _, s in self.param_shapes())

    @property
    def is_3d(self) -> bool:
        return self.in_dim == 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["domain"] = list(self.domain)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> INRSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"spec has unknown fields {shown(sorted(map(str, unknown)))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise SpecError(f"spec is incomplete: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> INRSpec:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError, RecursionError) as e:
            raise SpecError(f"spec is not valid JSON ({clipped(str(e))})") from None
        if not isinstance(d, dict):
            raise SpecError("spec must be a JSON object")
        return cls.from_dict(d)

    def with_name(self, name: str) -> INRSpec:
        return replace(self, name=name)


MNIST_SIREN = INRSpec(
    name="mnist-siren",
    in_dim=2,
    hidden=(32, 32),
    activation="sine",
    w0=30.0,
    output_offset=0.5,
    output="intensity",
    domain=(-1.0, 1.0),
    grid_size=28,
    param_prefix="seq",
    description="DWSNets/EquiGen MNIST-INR: SIREN 2→32→32→1, w0 30, output + 0.5",
)

HD_OCCUPANCY = INRSpec(
    name="hd-occupancy",
    in_dim=3,
    hidden=(128, 128, 128),
    activation="relu",
    posenc_freqs=4,
    output="occupancy_logit",
    domain=(-0.5, 0.5),
    param_prefix="layers",
    description="HyperDiffusion occupancy MLP: NeRF encoding (4 freqs) → ReLU 128×3 → logit",
)

BUILTIN_SPECS: dict[str, INRSpec] = {s.name: s for s in (MNIST_SIREN, HD_OCCUPANCY)}


def get_spec(name: str) -> INRSpec:
    """Look up a built-in spec by name."""
    try:
        return BUILTIN_SPECS[name]
    except KeyError:
        raise SpecError(
            f"unknown INR spec {name!r}; built-ins are {', '.join(sorted(BUILTIN_SPECS))}"
        ) from None


def spec_for_state_dict_keys(keys: set[str]) -> INRSpec | None:
    """The built-in spec whose state-dict keys are exactly ``keys``, if any."""
    for spec in BUILTIN_SPECS.values():
        if {k for k, _ in spec.param_shapes()} == keys:
            return spec
    return None
