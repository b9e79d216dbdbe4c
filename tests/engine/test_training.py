"""The shared training skeleton: schedule, resume, time limit, EMA, rank-0 saving."""

import math

import pytest
import torch

from engine.errors import InputError
from engine.training import TrainingRun, ema_update, warmup_cosine


def test_warmup_cosine_rises_then_decays_to_its_floor():
    total, warmup, floor = 100, 10, 0.1
    f = [warmup_cosine(s, total, warmup, floor) for s in range(total + 5)]
    assert f[0] == pytest.approx(1 / warmup)
    assert f[warmup] == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * warmup / total)))
    assert all(a < b for a, b in zip(f[:warmup - 1], f[1:warmup]))  # the rise
    assert all(a >= b for a, b in zip(f[warmup:], f[warmup + 1:]))  # then only down
    assert f[total] == pytest.approx(floor) and f[-1] == pytest.approx(floor)
    assert warmup_cosine(0, total) == pytest.approx(1.0)  # no warm-up: the peak at once


def _run(ckpt, total, **kw):
    torch.manual_seed(0)  # every run starts from the same weights
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, TrainingRun(total, {"model": model}, opt, checkpoint=ckpt,
                                   header={"config": {"steps": total}, "data": "d"}, checkpoint_every=2, **kw)


def _step(model, opt, run):
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(run.step))  # each step its own draw
    loss = (model(x) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return run.end_step({"loss": float(loss.detach())})


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    whole, opt, run = _run(None, 6)
    while run.running:
        _step(whole, opt, run)
    ckpt = tmp_path / "m.ckpt"
    first, opt, run = _run(ckpt, 6)
    for _ in range(3):  # killed after step 3: the checkpoint holds step 2
        _step(first, opt, run)
    second, opt, run = _run(ckpt, 6)
    assert run.resumed_from == 2
    while run.running:
        _step(second, opt, run)
    for a, b in zip(second.parameters(), whole.parameters()):
        assert torch.equal(a, b)
    assert ckpt.exists()  # until the caller has saved the result
    run.finish()
    assert not ckpt.exists()


def test_time_limit_stops_saves_and_keeps_the_checkpoint(tmp_path):
    ckpt = tmp_path / "m.ckpt"
    model, opt, run = _run(ckpt, 1000, max_seconds=0.0)
    metrics = _step(model, opt, run)
    assert not run.running and run.stopped_by_time_limit and run.step == 1
    assert set(metrics) == {"loss"}
    run.finish()
    assert ckpt.exists()
    assert _run(ckpt, 1000)[2].resumed_from == 1


def test_another_runs_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "m.ckpt"
    model, opt, run = _run(ckpt, 4)
    for _ in range(2):
        _step(model, opt, run)
    with pytest.raises(InputError, match="another run"):
        _run(ckpt, 5)


def test_only_rank_zero_writes(tmp_path):
    ckpt = tmp_path / "m.ckpt"
    model, opt, run = _run(ckpt, 2, rank=1)
    while run.running:
        _step(model, opt, run)
    assert not ckpt.exists()


def test_running_means_cover_the_window():
    run = TrainingRun(10, {}, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), window=2)
    run.end_step({"loss": 1.0})
    run.end_step({"loss": 3.0})
    assert run.end_step({"loss": 5.0}) == {"loss": 4.0}


def test_ema_starts_fast_and_settles_at_its_decay():
    model, ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.weight.fill_(0.0)
    ema_update(ema, model, 0.999, step=0)  # decay (1 + 0) / 10 = 0.1
    assert float(ema.weight.detach()) == pytest.approx(0.9)
    ema.weight.data.fill_(0.0)
    ema_update(ema, model, 0.999, step=10**6)
    assert float(ema.weight.detach()) == pytest.approx(0.001)
