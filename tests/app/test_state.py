"""The studio's plain state, without Qt: unique names, undo/redo, sessions that survive a kill."""

from __future__ import annotations

import json

import pytest
import torch

from engine.errors import InputError
from engine.functional import init_from_seed
from engine.inr_io import INR, load_inr
from engine.spec import MNIST_SIREN
from equigen_app.state import SESSION_FILE, SessionLibrary, StudioState


def _inr(seed: int, source: str = "") -> INR:
    return INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, seed), 0, {"source": source})


def test_same_name_from_two_folders_stays_two_shapes_with_their_own_data(tmp_path):
    state = StudioState(tmp_path / "s")
    a, b = state.add("references", [("mug", _inr(1))]), state.add("references", [("mug", _inr(2))])
    assert [s.name for s in state.references] == ["mug", "mug 2"]
    assert a[0].file != b[0].file
    first = load_inr(state.path_of(a[0])).params["seq.0.weight"]
    assert torch.equal(first, _inr(1).params["seq.0.weight"])
    assert not torch.equal(first, load_inr(state.path_of(b[0])).params["seq.0.weight"])


def test_remove_undo_redo_restore_order_and_events(tmp_path):
    state = StudioState(tmp_path / "s")
    shapes = state.add("results", [(f"g{i}", _inr(i)) for i in range(5)])
    events = []
    state.results.removed.append(lambda first, n: events.append(("-", first, n)))
    state.results.inserted.append(lambda at, s: events.append(("+", at, len(s))))
    assert state.remove([shapes[1].id, shapes[2].id, shapes[4].id]) == 3
    assert [s.name for s in state.results] == ["g0", "g3"]
    assert events == [("-", 4, 1), ("-", 1, 2)]
    assert state.undo_text == "remove 3 from results"
    state.undo()
    assert [s.name for s in state.results] == ["g0", "g1", "g2", "g3", "g4"]
    state.redo()
    assert [s.name for s in state.results] == ["g0", "g3"]
    state.undo()
    state.undo()  # the add itself
    assert len(state.results) == 0 and not state.undo()
    state.redo()
    assert len(state.results) == 5


def test_a_result_becomes_a_reference(tmp_path):
    state = StudioState(tmp_path / "s")
    made = state.add("results", [("generated-s0-000", _inr(3))])
    ref = state.copy_to([made[0].id], "references")
    assert [s.name for s in state.references] == ["generated-s0-000"] and ref[0].id != made[0].id
    assert len(state.results) == 1


def test_session_reopens_as_saved_and_a_kill_between_writes_leaves_it_whole(tmp_path):
    folder = tmp_path / "s"
    state = StudioState(folder)
    state.add("references", [("a", _inr(1)), ("b", _inr(2))])
    state.set_settings(diversity=0.8, count=8, seed=3)
    state.add("results", [("r", _inr(4))])
    state.remove([state.references[0].id])
    again = StudioState(folder)
    assert [s.name for s in again.references] == ["b"] and [s.name for s in again.results] == ["r"]
    assert again.settings.diversity == 0.8 and again.settings.count == 8 and again.settings.seed == 3
    # a shape's file written but the session not yet: the session still opens as it was
    (folder / "results" / "half.safetensors").write_bytes(b"interrupted")
    assert [s.name for s in StudioState(folder).results] == ["r"]
    # a shape whose file vanished is left out, not fatal
    (folder / again.results[0].file).unlink()
    assert len(StudioState(folder).results) == 0
    json.loads((folder / SESSION_FILE).read_text())


def test_an_unreadable_session_says_what_to_do(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / SESSION_FILE).write_text("{not json")
    with pytest.raises(InputError, match="start a new one"):
        StudioState(tmp_path / "s")


def test_library_lists_recent_sessions_and_remembers_the_last(tmp_path):
    lib = SessionLibrary(tmp_path)
    assert lib.last() is None
    first, second = lib.new(), lib.new()
    assert first != second
    StudioState(first).save()
    StudioState(second).save()
    assert set(lib.recent()) == {first, second}
    lib.remember(first)
    assert lib.last() == first.resolve()


def _inr3d(seed: int) -> INR:
    from engine.spec import HD_OCCUPANCY

    return INR.from_batch(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, seed), 0, {})


def test_generate_uses_the_selected_references_of_the_models_kind_or_all_of_them(tmp_path):
    state = StudioState(tmp_path / "s")
    assert "add 1 to 20 examples" in state.shots_for(2).problem
    assert "no model loaded" in state.shots_for(None).problem
    glyphs = state.add("references", [(f"g{i}", _inr(i)) for i in range(3)])
    (mug,) = state.add("references", [("mug", _inr3d(0))])
    every = state.shots_for(2)
    assert every.shapes == glyphs and "1 of another kind left out" in every.note
    assert state.shots_for(2, [glyphs[2], glyphs[0]]).shapes == [glyphs[2], glyphs[0]]
    assert state.shots_for(2, [glyphs[1]]).note is None
    assert state.shots_for(3).shapes == [mug]
    assert "none of the references is 3D" in state.shots_for(3, glyphs).problem
    assert state.shots_summary(2) == "Generate uses all 3 2D reference(s); 1 of the other kind left out"
    assert state.shots_summary(2, [glyphs[0]]).startswith("Generate uses the 1 selected")


def test_a_blend_needs_two_picks_of_the_models_kind_and_a_method_that_blends(tmp_path):
    state = StudioState(tmp_path / "s")
    glyphs = state.add("references", [(f"g{i}", _inr(i)) for i in range(4)])
    (mug,) = state.add("references", [("mug", _inr3d(0))])
    choice = state.blend_for(2, [glyphs[3], glyphs[1]], "equigen")
    assert choice.problem is None and choice.shapes == glyphs and choice.blend == (3, 1)
    assert "exactly two" in state.blend_for(2, [glyphs[0]], "equigen").problem
    assert "of the model's kind" in state.blend_for(2, [glyphs[0], mug], "equigen").problem
    assert "EquiGen methods" in state.blend_for(2, glyphs[:2], "shots-noise").problem
