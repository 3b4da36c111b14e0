"""Source training: a step lowers the loss, checkpoints round-trip, resume continues, the source memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fbp_landcover.engine.errors import CancelledError
from fbp_landcover.engine.io.normalize import FBP_SOURCE_STATS
from fbp_landcover.engine.models import build_model
from fbp_landcover.engine.models.fbpmodel import read_card
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from fbp_landcover.engine.training import common, losses, source_memory, train
from tests.engine.test_fbp_dataset import make_fbp_root
from tests.models import TINY_SMP, tiny_model

torch = import_torch()
TRAIN = dict(architecture="smp", **TINY_SMP, iterations_per_epoch=2, batch_size=2, patch=64, val_patches=2,
             memory_count=12, memory_size=32, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run (1 epoch of 2 iterations) on a 3-scene FBP fixture."""
    d = tmp_path_factory.mktemp("train")
    root = make_fbp_root(d / "fbp", h=128, w=128)
    messages: list[tuple[float, str]] = []
    card = train.train_source(root, d / "m.fbpmodel", epochs=1, progress=lambda f, m: messages.append((f, m)),
                              **TRAIN)
    return d, root, card, messages


def test_training_with_the_fixed_fbp_statistics_stores_them_in_the_model(tmp_path):
    root = make_fbp_root(tmp_path / "fbp", h=96, w=96)
    card = train.train_source(root, tmp_path / "s.fbpmodel", epochs=1, stats="source",
                              **{**TRAIN, "iterations_per_epoch": 1})
    assert card.stats == FBP_SOURCE_STATS and card.provenance["normalisation"] == "source"


def test_a_training_step_lowers_the_loss_on_a_fixed_batch():
    model, _card = tiny_model("smp", seed=1)
    model.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 32, 32, generator=gen)
    y = torch.randint(1, 25, (2, 32, 32), generator=gen)
    y[:, :8] = 0
    w = torch.tensor(losses.weights_from_counts(np.bincount(y.numpy().ravel(), minlength=25)))
    opt = common.make_optimizer(model, 0.01)
    before = None
    for _ in range(3):
        opt.zero_grad()
        loss = losses.weighted_ce(model(x), y, w)
        loss.backward()
        opt.step()
        before = float(loss.detach()) if before is None else before
    with torch.no_grad():
        after = float(losses.weighted_ce(model(x), y, w))
    assert after < before


def test_poly_lr_and_miou():
    assert common.poly_lr(0.005, 0, 100) == pytest.approx(0.005)
    assert common.poly_lr(0.005, 50, 100) == pytest.approx(0.005 * 0.5 ** 0.9)
    assert common.poly_lr(0.005, 100, 100) == 0.0
    ref = np.array([[0, 3, 3], [5, 5, 3]])
    pred = np.array([[7, 3, 5], [5, 5, 3]])
    cm = train.confusion(pred, ref)
    # class 3: tp 2, fn 1, fp 0 -> 2/3 ; class 5: tp 2, fn 0, fp 1 -> 2/3
    assert train.miou(cm) == pytest.approx(2 / 3)


def test_the_poly_schedule_is_torch_lambdalr_and_exact():
    """The learning rate of every iteration is exactly poly_lr (also resumed mid-way, and with a total that is
    re-estimated while running); torch's PolynomialLR multiplies step ratios and only approximates it."""
    def rates(start: int, total, n: int) -> list[float]:
        opt = common.Optimisation(torch.nn.Linear(2, 2), lr=0.005, momentum=0.9, weight_decay=1e-5,
                                  device="cpu", amp=False)
        opt.schedule(total, 0.9, start=start)
        out = []
        for i in range(start, start + n):
            opt.at(i)
            out.append(opt.lr)
            opt.optimizer.step()
        return out

    assert rates(0, lambda _i: 1000, 1000) == [common.poly_lr(0.005, i, 1000) for i in range(1000)]
    assert rates(300, lambda _i: 1000, 700) == [common.poly_lr(0.005, i, 1000) for i in range(300, 1000)]
    assert rates(0, lambda i: i + 2, 50) == [common.poly_lr(0.005, i, i + 2) for i in range(50)]
    param = torch.nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([param], lr=0.005)
    polynomial = torch.optim.lr_scheduler.PolynomialLR(sgd, total_iters=1000, power=0.9)
    chained = []
    for _ in range(1000):
        chained.append(sgd.param_groups[0]["lr"])
        sgd.step()
        polynomial.step()
    exact = [common.poly_lr(0.005, i, 1000) for i in range(1000)]
    assert chained != exact and max(abs(a - b) / b for a, b in zip(chained, exact, strict=True) if b) < 1e-12


def test_checkpoints_written_with_provenance(trained):
    d, _root, card, messages = trained
    for name in ("m.fbpmodel", "m.last.fbpmodel", "m.resume.pt", "m.memory.npz"):
        assert (d / name).is_file(), name
    p = card.provenance
    assert p["task"] == "source training" and p["checkpoint"] == "best"
    assert p["epochs"] == 1 and p["iterations"] == 2 and p["iterations_per_epoch"] == 2
    assert len(p["train_scenes"]) == 2 and len(p["validation_scenes"]) == 1
    assert not set(p["train_scenes"]) & set(p["validation_scenes"])
    assert 0.0 <= p["val_miou"] <= 1.0 and p["source_memory"] == "m.memory.npz"
    # the default normalisation is each scene's own statistics, as mapping's (bench/bench_stats.py)
    assert card.architecture == "smp" and card.sensor == "fbp8bit" and card.stats is None
    assert p["normalisation"] == "scene"
    assert read_card(d / "m.last.fbpmodel").provenance["checkpoint"] == "last"
    fractions = [f for f, _m in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("iteration 2/2" in m for _f, m in messages)


def test_checkpoint_round_trip_gives_the_same_outputs(trained):
    d, _root, card, _messages = trained
    loaded, loaded_card, _path = load_model(str(d / "m.fbpmodel"))
    state = torch.load(str(d / "m.resume.pt"),
                       weights_only=True)["model"]  # the weights as training left them
    direct = build_model(loaded_card)
    direct.load_state_dict(state)
    direct.eval()
    x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x), direct(x))


@pytest.mark.slow
def test_resume_continues_the_iteration_count(trained, tmp_path):
    d, root, _card, _messages = trained
    out = tmp_path / "m.fbpmodel"
    for name in ("m.fbpmodel", "m.last.fbpmodel", "m.resume.pt"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    messages: list[str] = []
    card = train.train_source(root, out, epochs=2, progress=lambda f, m: messages.append(m), **TRAIN)
    assert any(m.startswith("Resuming at epoch 2 (iteration 2)") for m in messages)
    assert not any("iteration 1/4" in m or "iteration 2/4" in m for m in messages)
    assert any("iteration 4/4" in m for m in messages)
    last = read_card(tmp_path / "m.last.fbpmodel").provenance
    assert last["epochs"] == 2 and last["iterations"] == 4
    saved = torch.load(str(tmp_path / "m.resume.pt"), weights_only=True)
    assert saved["epoch"] == 2 and saved["iteration"] == 4 and len(json.loads(saved["history"])) == 2
    assert last["epochs_planned"] == 2
    # train_source returns the best checkpoint's card (either epoch may have the best validation mIoU)
    assert card.provenance == read_card(out).provenance
    with pytest.raises(Exception, match="different training set-up"):
        train.train_source(root, out, epochs=3, **{**TRAIN, "patch": 32})


def test_cancel_before_the_first_epoch_writes_nothing(tmp_path):
    root = make_fbp_root(tmp_path / "fbp", names=("GF2_A", "GF2_B"), h=64, w=64)
    with pytest.raises(CancelledError):
        train.train_source(root, tmp_path / "c.fbpmodel", epochs=1, is_cancelled=lambda: True, **TRAIN)
    assert not list(tmp_path.glob("c*"))


def test_source_memory_written_beside_the_model(trained):
    d, root, _card, _messages = trained
    mem = source_memory.load_source_memory(source_memory.memory_path(d / "m.fbpmodel"))
    assert mem.images.shape == (12, 4, 32, 32) and mem.images.dtype == np.uint8
    assert mem.labels.shape == (12, 32, 32) and mem.mean.shape == (12, 4)
    # each patch carries the statistics of the scene it came from, as trained (per-scene by default)
    from fbp_landcover.engine.io.normalize import scene_stats
    from fbp_landcover.engine.training import fbp_dataset

    scenes = fbp_dataset.open_fbp(root)
    try:
        per_scene = {tuple(np.float32(scene_stats(sc).mean)) for sc in scenes}
    finally:
        for sc in scenes:
            sc.close()
    assert {tuple(m) for m in mem.mean} <= per_scene and len(per_scene) == 3
    x, y = mem.batch(3, np.random.default_rng(0), 16)
    assert tuple(x.shape) == (3, 4, 16, 16) and tuple(y.shape) == (3, 16, 16)


def test_source_memory_over_represents_rare_classes(tmp_path):
    from fbp_landcover.engine.training import fbp_dataset, sampler

    root = make_fbp_root(tmp_path / "fbp", names=("GF2_A",), h=256, w=256)
    scenes = fbp_dataset.open_fbp(root)
    try:
        regions, _ = sampler.make_regions(scenes, 0.0)
        mem = source_memory.build_source_memory(regions, count=16, size=32, seed=0)
        path = source_memory.save_source_memory(tmp_path / "s.memory.npz", mem)
        again = source_memory.load_source_memory(path)
    finally:
        for s in scenes:
            s.close()
    np.testing.assert_array_equal(again.labels, mem.labels)
    source_counts = np.array(mem.meta["source_class_counts"])
    source_share = source_counts[19] / source_counts[1:].sum()  # 32 pixels of 65536 minus padding
    mem_counts = again.class_counts()
    mem_share = mem_counts[19] / mem_counts[1:].sum()
    assert mem_share > 3 * source_share
    # round-robin over the 4 present classes: 4 of 16 patches are centred on a class-19 pixel
    assert sum(bool((lab == 19).any()) for lab in again.labels) >= 4


def test_source_memory_refuses_a_damaged_file(tmp_path):
    bad = tmp_path / "x.memory.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(Exception, match="damaged"):
        source_memory.load_source_memory(bad)


def test_a_model_trained_on_generated_scenes_says_so(tmp_path):
    """Scenes the demo generates carry a mark; a card then never says Five-Billion-Pixels data."""
    from fbp_landcover.engine.demo.synthetic.writers import write_source_dataset
    from fbp_landcover.engine.training.fbp_dataset import GENERATED_MARK, open_fbp

    write_source_dataset(tmp_path / "generated", n_scenes=1, size=64, seed=5)
    assert (tmp_path / "generated" / GENERATED_MARK).read_text() == (
        "generated by fbp_landcover's demo.synthetic (seed 5), not Five-Billion-Pixels imagery\n")
    _sensor, _gsd, said = train._source_kind(open_fbp(tmp_path / "generated"), "8bit")
    assert said == ("generated data in the Five-Billion-Pixels layout, not real imagery (generated by "
                    "fbp_landcover's demo.synthetic (seed 5), not Five-Billion-Pixels imagery; 8bit images)")
    real = make_fbp_root(tmp_path / "real", h=64, w=64)  # a layout without the mark: taken as FBP data
    assert train._source_kind(open_fbp(real), "8bit")[2] == "Five-Billion-Pixels layout (8bit images)"


def test_the_trained_card_says_what_it_was_trained_on(trained):
    _d, _root, card, _messages = trained
    assert card.provenance["trained_on"] == "Five-Billion-Pixels layout (8bit images): 2 training scene(s)"
