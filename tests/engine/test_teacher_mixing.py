"""The stronger DPA's pieces: the mean teacher's update, ClassMix (labels follow the pixels), TENT (only the
BatchNorm scale and shift move), the reference configuration and the options' refusals."""

from __future__ import annotations

import pytest

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from fbp_landcover.engine.training.mixing import class_mix
from fbp_landcover.engine.training.teacher import MeanTeacher
from tests.engine.test_adapt import _run, setup  # noqa: F401  (the module fixture)

torch = import_torch()


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))


def test_teacher_is_the_exponential_average_of_the_student():
    student = _net()
    teacher = MeanTeacher(student, 0.9)
    start = [p.detach().clone() for p in teacher.model.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    teacher.update(student)
    for t, s, t0 in zip(teacher.model.parameters(), student.parameters(), start, strict=True):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * s, atol=1e-7)
        assert not t.requires_grad
    assert torch.allclose(teacher.model[1].running_mean, torch.full((3,), 0.2))  # 0.9 * 0 + 0.1 * 2
    assert int(teacher.model[1].num_batches_tracked) == 7  # integer buffers are copied
    assert not teacher.model.training
    teacher.update(student)  # a second step moves it 10 % of the remaining way again
    for t, s, t0 in zip(teacher.model.parameters(), student.parameters(), start, strict=True):
        assert torch.allclose(t, 0.81 * t0 + 0.19 * s, atol=1e-6)
    with pytest.raises(ValueError, match="momentum"):
        MeanTeacher(student, 1.0)


def test_class_mix_pastes_half_the_classes_with_their_labels():
    ys = torch.tensor([[[1, 1, 2, 2], [3, 3, 0, 0]]])  # classes 1, 2, 3 (0 is never pasted)
    xs = torch.full((1, 1, 2, 4), 10.0) + ys[:, None].float()
    xt = torch.zeros((2, 1, 2, 4))
    yt = torch.tensor([[[5, 5, 5, 5], [0, 6, 6, 6]], [[9] * 4] * 2])
    x, y, mask = class_mix(xs, ys, xt, yt, torch.Generator().manual_seed(0))
    assert x.shape == (1, 1, 2, 4) and y.shape == (1, 2, 4)  # the shorter batch sets the count
    pasted = sorted(int(c) for c in torch.unique(ys[mask]))
    assert len(pasted) == 2 and set(pasted) <= {1, 2, 3}  # floor((3 + 1) / 2) of the three classes
    assert torch.equal(mask, torch.isin(ys, torch.tensor(pasted)))
    assert torch.equal(y[mask], ys[mask]) and torch.equal(x[0, 0][mask[0]], xs[0, 0][mask[0]])
    assert torch.equal(y[~mask], yt[:1][~mask]) and bool((x[0, 0][~mask[0]] == 0).all())
    assert not bool(mask[0, 1, 2:].any())  # the source's unlabelled pixels stay target pixels
    with pytest.raises(ValueError, match="differ"):
        class_mix(xs, ys, torch.zeros((1, 1, 4, 4)), yt, None)


def test_class_mix_of_an_unlabelled_source_patch_is_the_target():
    ys = torch.zeros((1, 3, 3), dtype=torch.long)
    xt, yt = torch.rand((1, 2, 3, 3)), torch.full((1, 3, 3), 4)
    x, y, mask = class_mix(torch.ones((1, 2, 3, 3)), ys, xt, yt)
    assert not bool(mask.any()) and torch.equal(x, xt) and torch.equal(y, yt)


@pytest.mark.slow
def test_siamese_with_teacher_and_classmix_records_them(setup):  # noqa: F811
    card, messages = _run(setup, "tm.fbpmodel", iterations=3, method="siamese", teacher=0.9, mix="classmix")
    p = card.provenance
    assert p["method"] == "siamese" and p["teacher"] == 0.9 and p["mix"] == "classmix"
    assert p["iterations"] == 3
    card, _m = _run(setup, "ref.fbpmodel", iterations=2, method="dpa-reference", teacher=0.9, mix="classmix",
                    class_quota=0.5)
    p = card.provenance
    assert p["method"] == "dpa-reference" and "teacher" not in p and "mix" not in p


@pytest.mark.slow
def test_tent_moves_only_the_batchnorm_scale_and_shift(setup):  # noqa: F811
    d, model, _target = setup
    card, messages = _run(setup, "tent.fbpmodel", iterations=3, method="tent", source=False, lr=0.05)
    assert card.provenance["method"] == "tent" and card.provenance["iterations"] == 3
    assert not any("pseudo-label share" in m for m in messages if m.startswith("Adapting"))
    base, _c, _p = load_model(str(model))
    tent, _c, _p = load_model(str(d / "tent.fbpmodel"))
    moved = {"bn": 0, "other": 0}
    for (name, a), (_n, b) in zip(base.named_parameters(), tent.named_parameters(), strict=True):
        owner = base.get_submodule(name.rsplit(".", 1)[0])
        kind = "bn" if isinstance(owner, torch.nn.modules.batchnorm._BatchNorm) else "other"
        moved[kind] += int(not torch.equal(a, b))
    assert moved["bn"] > 0 and moved["other"] == 0
    assert all(p.requires_grad for p in tent.parameters())


def test_unknown_mixing_is_refused(setup):  # noqa: F811
    with pytest.raises(FbpError, match="mixing 'cutout' is not known"):
        _run(setup, "x.fbpmodel", iterations=1, mix="cutout")


def test_bn_statistics_keep_the_asked_share_of_the_source():
    from fbp_landcover.engine.training.adapt import bn_adapt

    full, half = _net(), _net()
    for net in (full, half):
        net[1].running_mean.fill_(1.0)
        net[1].running_var.fill_(4.0)
    batches = [torch.randn(4, 2, 8, 8) + 3.0 for _ in range(2)]
    bn_adapt(full, iter(batches), "cpu")
    bn_adapt(half, iter(batches), "cpu", target_share=0.5)
    assert torch.allclose(half[1].running_mean, 0.5 * 1.0 + 0.5 * full[1].running_mean, atol=1e-6)
    assert torch.allclose(half[1].running_var, 0.5 * 4.0 + 0.5 * full[1].running_var, atol=1e-6)
    assert not torch.allclose(full[1].running_mean, torch.ones(3))
    with pytest.raises(FbpError, match=r"in \[0, 1\]"):
        bn_adapt(_net(), iter(batches), "cpu", target_share=1.5)


def test_what_is_said_about_the_source_and_the_epochs():
    from fbp_landcover.engine.training.adapt import source_words
    from fbp_landcover.engine.training.train import trained_words

    memory = "source memory m.memory.npz (8 patches of 64 px)"
    assert source_words(memory, "siamese") == memory
    assert source_words(memory, "bn+kl") == (
        "only the class counts (for the class weights) of source memory m.memory.npz (8 patches of 64 px); "
        "bn+kl uses no source patches")
    assert source_words("none (source-free)", "tent") == "none (source-free)"
    p = {"epochs": 4, "epochs_planned": 6, "iterations_per_epoch": 20, "best_epoch": 4, "val_miou": 0.25141}
    assert trained_words(p) == ("Trained 6 epoch(s) of 20 iteration(s); kept epoch 4, the best on "
                                "validation (mIoU 0.2514)")
