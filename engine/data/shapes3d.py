"""Procedural 3D shape families that resemble ShapeNet categories, built with manifold3d.

Every shape is a union/difference of solids computed by manifold3d, so it is watertight by
construction. Each family draws its proportions and its style (leg type, back style, handle, ...)
from a random generator seeded by (seed, family, index), so a shape is reproducible from its id.
Z is up; the fitting step centres and scales every shape anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh
from manifold3d import CrossSection, Manifold, OpType

SEGMENTS = 40


# -- primitives ---------------------------------------------------------------------------------
def box(size, centre=(0.0, 0.0, 0.0)) -> Manifold:
    return Manifold.cube(tuple(float(s) for s in size), center=True).translate(tuple(map(float, centre)))


def cylinder(radius, height, base=(0.0, 0.0, 0.0), radius_top=None, segments=SEGMENTS) -> Manifold:
    top = -1.0 if radius_top is None else float(radius_top)
    return Manifold.cylinder(float(height), float(radius), top, segments).translate(tuple(map(float, base)))


def revolve(profile: np.ndarray, segments: int = 56) -> Manifold:
    """Solid of revolution about Z from a profile of (radius, z) points, closed on the axis."""
    pts = np.asarray(profile, dtype=float)
    closed = np.concatenate([[[0.0, pts[0, 1]]], pts, [[0.0, pts[-1, 1]]]])
    cs = CrossSection([closed])
    if cs.area() < 0:
        cs = CrossSection([closed[::-1]])
    return Manifold.revolve(cs, segments)


def union(parts: list[Manifold]) -> Manifold:
    return Manifold.batch_boolean(parts, OpType.Add)


def hull(parts: list[Manifold]) -> Manifold:
    return Manifold.batch_hull(parts)


def to_trimesh(m: Manifold) -> trimesh.Trimesh:
    mesh = m.to_mesh()
    return trimesh.Trimesh(np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts), process=False)


def smooth_profile(rng, heights, radii, n=40) -> np.ndarray:
    """A smooth (radius, z) curve through control points (monotone cubic interpolation)."""
    from scipy.interpolate import PchipInterpolator

    z = np.linspace(heights[0], heights[-1], n)
    r = PchipInterpolator(heights, radii)(z)
    return np.stack([np.maximum(r, 0.01), z], -1)


# -- families -----------------------------------------------------------------------------------
def chair(rng: np.random.Generator) -> Manifold:
    w, d = rng.uniform(0.42, 0.6), rng.uniform(0.4, 0.58)
    t, h = rng.uniform(0.035, 0.07), rng.uniform(0.38, 0.5)
    leg = rng.uniform(0.03, 0.055)
    parts = [box((w, d, t), (0, 0, h))]
    round_legs = rng.random() < 0.4
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - leg), sy * (d / 2 - leg)
            if round_legs:
                parts.append(cylinder(leg * 0.6, h, (x, y, 0), radius_top=leg * 0.5))
            else:
                parts.append(box((leg, leg, h), (x, y, h / 2)))
    bh = rng.uniform(0.35, 0.6)
    bt = rng.uniform(0.03, 0.06)
    by = d / 2 - bt / 2
    style = rng.choice(["panel", "slats", "frame"])
    if style == "panel":
        parts.append(box((w, bt, bh), (0, by, h + bh / 2)))
    elif style == "slats":
        n = int(rng.integers(3, 6))
        for x in np.linspace(-w / 2 + leg / 2, w / 2 - leg / 2, n):
            parts.append(box((leg * 0.8, bt, bh), (x, by, h + bh / 2)))
        parts.append(box((w, bt, bh * 0.18), (0, by, h + bh * 0.91)))
    else:
        panel = box((w, bt, bh), (0, by, h + bh / 2))
        hole = box((w * 0.6, bt * 2, bh * 0.5), (0, by, h + bh * 0.5))
        parts.append(panel - hole)
    if rng.random() < 0.3:  # arms
        ah = rng.uniform(0.18, 0.25)
        for sx in (-1, 1):
            parts.append(box((leg, d * 0.8, leg), (sx * (w / 2 - leg / 2), 0, h + ah)))
            parts.append(box((leg, leg, ah), (sx * (w / 2 - leg / 2), -d * 0.3, h + ah / 2)))
    return union(parts).mirror((0, 1, 0))  # back towards -y: the iso view shows the front


def table(rng: np.random.Generator) -> Manifold:
    h = rng.uniform(0.55, 0.8)
    t = rng.uniform(0.03, 0.07)
    round_top = rng.random() < 0.35
    parts = []
    if round_top:
        r = rng.uniform(0.35, 0.6)
        parts.append(cylinder(r, t, (0, 0, h - t)))
        if rng.random() < 0.6:  # pedestal
            pr = rng.uniform(0.04, 0.08)
            parts += [cylinder(pr, h - t, (0, 0, 0)), cylinder(r * rng.uniform(0.35, 0.6), 0.03, (0, 0, 0))]
            return union(parts)
        w = d = r * 1.2
    else:
        w, d = rng.uniform(0.8, 1.4), rng.uniform(0.5, 0.9)
        parts.append(box((w, d, t), (0, 0, h - t / 2)))
    leg = rng.uniform(0.035, 0.07)
    inset = rng.uniform(0.02, 0.08)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - leg - inset), sy * (d / 2 - leg - inset)
            parts.append(box((leg, leg, h - t), (x, y, (h - t) / 2)))
    if rng.random() < 0.25:  # lower shelf
        parts.append(box((w - 2 * inset, d - 2 * inset, t * 0.7), (0, 0, h * 0.25)))
    return union(parts)


def lamp(rng: np.random.Generator) -> Manifold:
    base_r = rng.uniform(0.1, 0.2)
    base_h = rng.uniform(0.02, 0.05)
    parts = [cylinder(base_r, base_h, (0, 0, 0), radius_top=base_r * rng.uniform(0.7, 1.0))]
    stem_r = rng.uniform(0.014, 0.025)
    if rng.random() < 0.6:  # standing lamp with a shade
        sh = rng.uniform(0.4, 0.9)
        parts.append(cylinder(stem_r, sh, (0, 0, base_h)))
        r_lo, r_hi = rng.uniform(0.15, 0.3), rng.uniform(0.07, 0.16)
        shade_h = rng.uniform(0.15, 0.3)
        z = base_h + sh - shade_h * 0.6
        wall = 0.025
        outer = cylinder(r_lo, shade_h, (0, 0, z), radius_top=r_hi)
        inner = cylinder(r_lo - wall, shade_h + 0.002, (0, 0, z - 0.001), radius_top=r_hi - wall)
        parts += [outer - inner, cylinder(stem_r * 1.6, shade_h * 0.5, (0, 0, z + shade_h * 0.3))]
    else:  # desk lamp: an upright arm, a tilted arm and a cone head
        a1 = rng.uniform(0.3, 0.5)
        parts.append(cylinder(stem_r, a1, (0, 0, base_h)))
        a2 = rng.uniform(0.25, 0.45)
        tilt = rng.uniform(35, 70)
        arm = cylinder(stem_r, a2, (0, 0, 0)).rotate((0, tilt, 0)).translate((0, 0, base_h + a1))
        parts.append(arm)
        tip = np.array([np.sin(np.radians(tilt)) * a2, 0, base_h + a1 + np.cos(np.radians(tilt)) * a2])
        head_r, head_h = rng.uniform(0.07, 0.12), rng.uniform(0.1, 0.18)
        head = cylinder(0.02, head_h, (0, 0, -head_h), radius_top=head_r).rotate((0, 180 - tilt * 0.3, 0))
        parts += [head.translate(tuple(tip)), Manifold.sphere(stem_r * 1.8, 16).translate((0, 0, base_h + a1))]
    return union(parts)


def airplane(rng: np.random.Generator) -> Manifold:
    length = rng.uniform(1.0, 1.4)
    r = rng.uniform(0.045, 0.085)
    half = length / 2
    body = hull([Manifold.sphere(r, 24).scale((2.2, 1, 1)).translate((half - 2 * r, 0, 0)),
                 Manifold.sphere(r, 24).translate((-half * 0.3, 0, 0)),
                 Manifold.sphere(r * 0.35, 16).translate((-half, 0, r * 0.4))])
    span = rng.uniform(0.9, 1.4)
    root = rng.uniform(0.18, 0.32)
    tip = root * rng.uniform(0.3, 0.7)
    sweep = rng.uniform(0.0, 0.3)
    thick = rng.uniform(0.03, 0.045)
    wx = rng.uniform(-0.1, 0.12)
    wz = rng.uniform(-0.6, 0.3) * r
    wing = hull([box((root, 0.02, thick), (wx, 0, wz)),
                 box((tip, 0.02, thick * 0.6), (wx - sweep, span / 2, wz + 0.02)),
                 box((tip, 0.02, thick * 0.6), (wx - sweep, -span / 2, wz + 0.02))])
    tail_span = span * rng.uniform(0.28, 0.42)
    tx = -half + 0.08
    stab = hull([box((root * 0.5, 0.02, thick * 0.7), (tx, 0, r * 0.3)),
                 box((tip * 0.5, 0.02, thick * 0.5), (tx - sweep * 0.4, tail_span / 2, r * 0.3)),
                 box((tip * 0.5, 0.02, thick * 0.5), (tx - sweep * 0.4, -tail_span / 2, r * 0.3))])
    fin_h = rng.uniform(0.12, 0.24)
    fin = hull([box((root * 0.55, thick, 0.02), (tx, 0, r * 0.5)),
                box((tip * 0.5, thick * 0.6, 0.02), (tx - sweep * 0.5 - 0.03, 0, r + fin_h))])
    parts = [body, wing, stab, fin]
    n_eng = int(rng.choice([0, 2, 2, 4]))
    for k in range(n_eng):
        side = 1 if k % 2 == 0 else -1
        y = side * span * (0.18 if k < 2 else 0.34)
        er = rng.uniform(0.03, 0.045)
        eng = cylinder(er, er * 5, (0, 0, 0)).rotate((0, 90, 0)).translate((wx - er * 2.5 + 0.04, y, wz - er * 1.1))
        parts.append(eng)
    return union(parts)


def vase(rng: np.random.Generator) -> Manifold:
    h = rng.uniform(0.5, 1.0)
    base = rng.uniform(0.08, 0.16)
    belly = rng.uniform(0.14, 0.3)
    neck = rng.uniform(0.05, 0.14)
    lip = neck * rng.uniform(1.0, 1.6)
    zb = rng.uniform(0.25, 0.5) * h
    zn = rng.uniform(0.7, 0.88) * h
    profile = smooth_profile(rng, [0, zb, zn, h], [base, belly, neck, lip])
    solid = revolve(profile)
    cavity = cylinder(neck * 0.7, h * 0.3, (0, 0, h * 0.72))
    return solid - cavity


def mug(rng: np.random.Generator) -> Manifold:
    r = rng.uniform(0.18, 0.3)
    h = rng.uniform(0.32, 0.6)
    wall = rng.uniform(0.025, 0.04)
    taper = rng.uniform(0.85, 1.1)
    body = cylinder(r, h, (0, 0, 0), radius_top=r * taper)
    inside = cylinder(r - wall, h, (0, 0, wall * 1.5), radius_top=r * taper - wall)
    handle_h = h * rng.uniform(0.5, 0.75)
    tube = rng.uniform(0.025, 0.045)
    if rng.random() < 0.7:  # round handle: a torus standing beside the mug
        ring_r = handle_h / 2
        torus = Manifold.revolve(CrossSection.circle(tube, 16).translate((ring_r, 0)), 32)
        handle = torus.rotate((90, 0, 0)).translate((r, 0, h / 2))
    else:  # square handle
        reach = rng.uniform(0.1, 0.16)
        handle = union([box((reach, tube * 2, tube * 2), (r + reach / 2 - 0.01, 0, h / 2 + handle_h / 2)),
                        box((reach, tube * 2, tube * 2), (r + reach / 2 - 0.01, 0, h / 2 - handle_h / 2)),
                        box((tube * 2, tube * 2, handle_h + tube * 2), (r + reach - tube, 0, h / 2))])
    handle = handle - cylinder(r * 0.98, h, (0, 0, 0), radius_top=r * taper * 0.98)
    return union([body - inside, handle])


def bottle(rng: np.random.Generator) -> Manifold:
    rb = rng.uniform(0.1, 0.2)
    hb = rng.uniform(0.4, 0.75)
    rn = rb * rng.uniform(0.22, 0.4)
    shoulder = rng.uniform(0.08, 0.25)
    neck = rng.uniform(0.08, 0.2)
    heights = [0, 0.02, hb, hb + shoulder, hb + shoulder + neck]
    radii = [rb * 0.92, rb, rb * rng.uniform(0.9, 1.05), rn * 1.05, rn]
    solid = revolve(smooth_profile(rng, heights, radii, 48))
    top = heights[-1]
    cap_h = rng.uniform(0.03, 0.07)
    cap = cylinder(rn * 1.25, cap_h, (0, 0, top - 0.005))
    return union([solid, cap])


def bench(rng: np.random.Generator) -> Manifold:
    w = rng.uniform(1.0, 1.6)
    d = rng.uniform(0.3, 0.45)
    t = rng.uniform(0.04, 0.08)
    h = rng.uniform(0.38, 0.5)
    parts = [box((w, d, t), (0, 0, h - t / 2))]
    if rng.random() < 0.5:  # two panel legs
        pt = rng.uniform(0.04, 0.07)
        for sx in (-1, 1):
            panel = box((pt, d * 0.9, h - t), (sx * (w / 2 - rng.uniform(0.05, 0.15)), 0, (h - t) / 2))
            parts.append(panel - box((pt * 2, d * 0.5, (h - t) * 0.5), (panel.bounding_box()[0] + pt / 2, 0, 0)))
    else:
        leg = rng.uniform(0.035, 0.06)
        xs = [-w / 2 + leg, w / 2 - leg] + ([0.0] if w > 1.3 else [])
        for x in xs:
            for sy in (-1, 1):
                parts.append(box((leg, leg, h - t), (x, sy * (d / 2 - leg), (h - t) / 2)))
    if rng.random() < 0.45:  # backrest
        bh = rng.uniform(0.25, 0.4)
        bt = rng.uniform(0.03, 0.05)
        parts.append(box((w, bt, bh), (0, d / 2 - bt / 2, h + bh / 2 + 0.03)))
        for x in (-w / 2 + 0.05, w / 2 - 0.05):
            parts.append(box((0.04, bt, 0.06), (x, d / 2 - bt / 2, h + 0.02)))
    return union(parts).mirror((0, 1, 0))  # back towards -y: the iso view shows the front


def sofa(rng: np.random.Generator) -> Manifold:
    w = rng.uniform(1.2, 2.0)
    d = rng.uniform(0.65, 0.9)
    feet = rng.uniform(0.04, 0.1)
    base_h = rng.uniform(0.15, 0.25)
    arm_w = rng.uniform(0.1, 0.2)
    back_t = rng.uniform(0.15, 0.25)
    back_h = rng.uniform(0.35, 0.55)
    seat_z = feet + base_h
    parts = [box((w, d, base_h), (0, 0, feet + base_h / 2))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(box((0.05, 0.05, feet + 0.01), (sx * (w / 2 - 0.08), sy * (d / 2 - 0.08), feet / 2)))
    parts.append(box((w, back_t, back_h), (0, d / 2 - back_t / 2, seat_z + back_h / 2)))
    arm_h = rng.uniform(0.15, 0.3)
    for sx in (-1, 1):
        parts.append(box((arm_w, d, arm_h), (sx * (w / 2 - arm_w / 2), 0, seat_z + arm_h / 2)))
    n = int(rng.integers(2, 4))
    inner = w - 2 * arm_w
    cushion_h = rng.uniform(0.06, 0.12)
    for k in range(n):
        cw = inner / n - 0.01
        x = -inner / 2 + (k + 0.5) * inner / n
        parts.append(box((cw, d - back_t - 0.02, cushion_h), (x, -back_t / 2, seat_z + cushion_h / 2)))
    if rng.random() < 0.2:  # a chaise on one side
        side = rng.choice([-1, 1])
        parts.append(box((inner / n, d * 0.7, base_h), (side * (inner / 2 - inner / n / 2), -d / 2 - d * 0.35 + 0.01, feet + base_h / 2)))
    return union(parts).mirror((0, 1, 0))  # back towards -y: the iso view shows the front


def stool(rng: np.random.Generator) -> Manifold:
    h = rng.uniform(0.45, 0.75)
    t = rng.uniform(0.03, 0.06)
    n_legs = int(rng.choice([3, 4, 4]))
    leg = rng.uniform(0.018, 0.03)
    splay = rng.uniform(0.0, 0.08)
    round_seat = rng.random() < 0.6
    r = rng.uniform(0.16, 0.26)
    parts = [cylinder(r, t, (0, 0, h - t)) if round_seat else box((2 * r, 2 * r, t), (0, 0, h - t / 2))]
    top_r = r * 0.72
    feet = []
    for k in range(n_legs):
        a = 2 * np.pi * (k + 0.5) / n_legs
        top = np.array([top_r * np.cos(a), top_r * np.sin(a), h - t])
        foot = np.array([(top_r + splay) * np.cos(a), (top_r + splay) * np.sin(a), 0.0])
        parts.append(hull([Manifold.sphere(leg, 12).translate(tuple(top)),
                           Manifold.sphere(leg, 12).translate(tuple(foot))]))
        feet.append((top, foot))
    if rng.random() < 0.5:  # a footrest ring of rungs between the legs
        zr = h * rng.uniform(0.25, 0.4)
        s = zr / (h - t)
        pts = [foot + (top - foot) * s for top, foot in feet]
        for k in range(n_legs):
            parts.append(hull([Manifold.sphere(leg * 0.7, 10).translate(tuple(pts[k])),
                               Manifold.sphere(leg * 0.7, 10).translate(tuple(pts[(k + 1) % n_legs]))]))
    return union(parts)


def goblet(rng: np.random.Generator) -> Manifold:
    foot_r = rng.uniform(0.1, 0.18)
    stem_h = rng.uniform(0.15, 0.4)
    stem_r = rng.uniform(0.012, 0.025)
    bowl_h = rng.uniform(0.18, 0.35)
    bowl_r = rng.uniform(0.1, 0.2)
    rim_r = bowl_r * rng.uniform(0.7, 1.15)
    z0 = 0.015 + stem_h
    profile = smooth_profile(rng, [z0, z0 + bowl_h * 0.45, z0 + bowl_h], [stem_r * 1.5, bowl_r, rim_r], 32)
    outer = revolve(profile)
    wall = 0.018
    inner_profile = smooth_profile(rng, [z0 + wall * 2, z0 + bowl_h * 0.45, z0 + bowl_h + 0.01],
                                   [0.01, bowl_r - wall, rim_r - wall], 32)
    bowl = outer - revolve(inner_profile)
    foot = cylinder(foot_r, 0.015, (0, 0, 0), radius_top=foot_r * 0.8)
    stem = cylinder(stem_r, stem_h + 0.01, (0, 0, 0.01))
    parts = [bowl, foot, stem]
    if rng.random() < 0.4:  # a knop on the stem
        parts.append(Manifold.sphere(stem_r * 2.0, 16).translate((0, 0, 0.015 + stem_h * rng.uniform(0.3, 0.7))))
    return union(parts)


def coatrack(rng: np.random.Generator) -> Manifold:
    h = rng.uniform(1.1, 1.6)
    pole_r = rng.uniform(0.022, 0.035)
    parts = [cylinder(pole_r, h, (0, 0, 0))]
    if rng.random() < 0.5:  # a round foot
        parts.append(cylinder(rng.uniform(0.15, 0.25), 0.03, (0, 0, 0)))
    else:  # three or four splayed feet
        n = int(rng.choice([3, 4]))
        reach = rng.uniform(0.18, 0.3)
        for k in range(n):
            a = 2 * np.pi * k / n
            parts.append(hull([Manifold.sphere(pole_r * 1.1, 10).translate((0, 0, 0.15)),
                               Manifold.sphere(pole_r * 0.9, 10).translate((reach * np.cos(a), reach * np.sin(a), 0.01))]))
    n_hooks = int(rng.integers(3, 7))
    hook_len = rng.uniform(0.1, 0.2)
    tilt = rng.uniform(0.4, 1.0)
    for k in range(n_hooks):
        a = 2 * np.pi * k / n_hooks + rng.uniform(-0.1, 0.1)
        z = h * rng.uniform(0.85, 0.95)
        tip = (hook_len * np.cos(a), hook_len * np.sin(a), z + hook_len * tilt)
        parts.append(hull([Manifold.sphere(pole_r * 0.7, 10).translate((0, 0, z)),
                           Manifold.sphere(pole_r * 0.7, 10).translate(tip)]))
    parts.append(Manifold.sphere(pole_r * 1.8, 16).translate((0, 0, h)))
    return union(parts)


def candelabra(rng: np.random.Generator) -> Manifold:
    base_r = rng.uniform(0.1, 0.18)
    h = rng.uniform(0.4, 0.8)
    stem_r = rng.uniform(0.015, 0.03)
    cup_r, cup_h = rng.uniform(0.035, 0.055), rng.uniform(0.04, 0.08)
    parts = [cylinder(base_r, 0.04, (0, 0, 0), radius_top=base_r * 0.6), cylinder(stem_r, h, (0, 0, 0.03))]

    def cup(x, y, z):
        c = cylinder(cup_r, cup_h, (x, y, z), radius_top=cup_r * 1.15)
        return c - cylinder(cup_r * 0.6, cup_h, (x, y, z + cup_h * 0.4))

    parts.append(cup(0, 0, h))
    n_arms = int(rng.choice([0, 2, 2, 4]))
    reach = rng.uniform(0.15, 0.3)
    za = h * rng.uniform(0.5, 0.75)
    rise = rng.uniform(0.05, 0.2)
    for k in range(n_arms):
        a = 2 * np.pi * k / n_arms
        tip = (reach * np.cos(a), reach * np.sin(a), za + rise)
        parts.append(hull([Manifold.sphere(stem_r * 0.8, 10).translate((0, 0, za)),
                           Manifold.sphere(stem_r * 0.8, 10).translate(tip)]))
        parts.append(cup(tip[0], tip[1], tip[2] - 0.01))
    return union(parts)


def shelf(rng: np.random.Generator) -> Manifold:
    w = rng.uniform(0.5, 1.0)
    d = rng.uniform(0.2, 0.35)
    h = rng.uniform(0.7, 1.4)
    t = rng.uniform(0.02, 0.04)
    n = int(rng.integers(3, 6))
    parts = []
    open_sides = rng.random() < 0.35  # four thin posts instead of two side boards
    if open_sides:
        post = rng.uniform(0.02, 0.035)
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(box((post, post, h), (sx * (w / 2 - post / 2), sy * (d / 2 - post / 2), h / 2)))
    else:
        for sx in (-1, 1):
            parts.append(box((t, d, h), (sx * (w / 2 - t / 2), 0, h / 2)))
    lift = rng.uniform(0.0, 0.1)
    for z in np.linspace(lift + t / 2, h - t / 2, n):
        parts.append(box((w, d, t), (0, 0, z)))
    if not open_sides and rng.random() < 0.5:
        parts.append(box((w, t * 0.5, h - lift), (0, d / 2 - t * 0.25, lift + (h - lift) / 2)))
    return union(parts)


FAMILIES: dict[str, Callable[[np.random.Generator], Manifold]] = {
    "airplane": airplane, "bench": bench, "bottle": bottle, "chair": chair, "lamp": lamp,
    "mug": mug, "sofa": sofa, "table": table, "vase": vase,
    "candelabra": candelabra, "coatrack": coatrack, "goblet": goblet, "shelf": shelf, "stool": stool,
}
# A family's number seeds its shapes; families are numbered in the order they were added (the
# first nine alphabetically), so adding a family never changes the shapes of the others.
FAMILY_IDS: tuple[str, ...] = ("airplane", "bench", "bottle", "chair", "lamp", "mug", "sofa", "table",
                               "vase", "candelabra", "coatrack", "goblet", "shelf", "stool")


def make_shape(family: str, index: int, seed: int = 0) -> trimesh.Trimesh:
    """Shape ``index`` of ``family`` (deterministic for a seed); watertight."""
    fid = FAMILY_IDS.index(family)
    rng = np.random.default_rng([seed, fid, index])
    mesh = to_trimesh(FAMILIES[family](rng))
    if not mesh.is_watertight or len(mesh.faces) == 0:
        raise ValueError(f"{family} #{index} did not come out watertight")
    return mesh
