"""The ``fbp-landcover train | adapt | evaluate | demo`` subcommands.

``add_commands(subparsers)`` adds them to the parser built by ``engine.cli.build_parser``; each command
function is called as ``func(args, progress)`` by ``engine.cli.main``, which turns FbpError, CancelledError
and Ctrl-C into exit codes. Outputs appear only when complete: a cancelled run leaves none of them behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import check_destination, check_outputs
from ..models.devices import DEVICES
from ..models.presets import PRESETS, preset
from ..training.config import METHODS, MIXES, TRAIN_STATS, TrainConfig
from ..training.fbp_dataset import IMAGE_KINDS
from . import EXIT_OK


def _smp_spec(args) -> dict:
    """The TrainConfig fields of the architecture options."""
    if args.arch == "fbp_unet":
        return {"architecture": "fbp_unet"}
    if args.arch in PRESETS:
        spec = preset(args.arch)
        return {k: spec[k] for k in ("architecture", "smp_arch", "encoder", "arch_kwargs")}
    kwargs: dict = {}
    if args.encoder_depth is not None:
        kwargs["encoder_depth"] = args.encoder_depth
    if args.decoder_channels:
        try:
            kwargs["decoder_channels"] = [int(v) for v in args.decoder_channels.split(",")]
        except ValueError:
            raise FbpError(f"--decoder-channels {args.decoder_channels!r} "
                           "is not a comma-separated list of integers such as 64,32,16,16.") from None
        depth = kwargs.get("encoder_depth", 5)
        if len(kwargs["decoder_channels"]) != depth:
            raise FbpError(f"--decoder-channels gives {len(kwargs['decoder_channels'])} value(s) "
                           f"but the encoder depth is {depth}; give one value per decoder stage.")
    return {"architecture": "smp", "smp_arch": args.arch, "encoder": args.encoder, "arch_kwargs": kwargs}


def cmd_train(args, progress) -> int:
    from ..training.config import TrainConfig
    from ..training.train import train_source

    out = check_destination(args.output, args.overwrite or args.resume, "model", make_folder=True)
    source = _training_source(args)
    config = TrainConfig(**_smp_spec(args), epochs=args.epochs,
                         iterations_per_epoch=args.iterations_per_epoch,
                         batch_size=args.batch_size, patch=args.patch, lr=args.lr,
                         class_aware=args.class_aware,
                         stats=args.stats, image=args.image, device=args.device, resume=args.resume,
                         seed=args.seed, val_patches=args.val_patches, sensor=args.sensor,
                         class_mapping=args.class_mapping, working_gsd=args.gsd)
    card = train_source(source, out, config, progress=progress)
    progress.close()
    from ..training.source_memory import memory_path
    from ..training.train import trained_words

    p = card.provenance
    arch = card.architecture + (f"/{card.smp_arch}/{card.encoder}" if card.smp_arch else "")
    print(f"Model: {out} ({arch})")
    print(f"  {trained_words(p)}")
    print(f"  source memory: {memory_path(out)}")
    return EXIT_OK


def _training_source(args):
    """The FBP folder, or the (image, label) pairs of --images and --labels; FbpError saying what is
    missing."""
    if args.source and (args.images or args.labels):
        raise FbpError("Both a training data folder and --images/--labels were given; give one of them.")
    if args.images or args.labels:
        if len(args.images or []) != len(args.labels or []):
            raise FbpError(f"{len(args.images or [])} image raster(s) but {len(args.labels or [])} label "
                           "raster(s) were given; give one label raster per image, in the same order.")
        for path in [*args.images, *args.labels]:
            if not os.path.exists(path):
                raise FbpError(f"The training raster {path} does not exist.")
        return list(zip(args.images, args.labels, strict=True))
    if not args.source:
        raise FbpError("No training data was given; give a Five-Billion-Pixels folder, or image rasters with "
                       "--images and their label rasters with --labels.")
    if not os.path.exists(args.source):
        raise FbpError(f"The training source {args.source} does not exist; give a Five-Billion-Pixels folder "
                       "(with Annotation__index/ inside).")
    return args.source


def cmd_memory(args, progress) -> int:
    """models memory: the source memory of a registered model or a model file, from labelled data."""
    from ..models import registry
    from ..training.source_memory import build_memory_for_model

    path, memory = build_memory_for_model(
        args.model, _training_source(args), models_dir=args.models_dir or registry.default_models_dir(),
        count=args.count, size=args.size, image=args.image, sensor=args.sensor,
        class_mapping=args.class_mapping, working_gsd=args.gsd, seed=args.seed, overwrite=args.overwrite,
        progress=progress)
    progress.close()
    present = int((memory.class_counts()[1:] > 0).sum())
    print(f"Source memory: {path} ({len(memory)} patches of {memory.size} px, {present} classes present); "
          "Siamese adaptation of this model now uses it.")
    return EXIT_OK


def add_memory_command(msub) -> None:
    """``fbp-landcover models memory`` (under the models command of cli/map.py)."""
    m = msub.add_parser("memory", help="build a model's source memory from labelled data (then adaptation "
                                       "runs Siamese DPA for it)")
    m.add_argument("model", help="a registered model's name or a model file")
    _labelled_data_options(m)
    m.add_argument("--count", type=int, default=256, help="patches to keep (class-stratified)")
    m.add_argument("--size", type=int, default=256, help="patch size in pixels")
    m.add_argument("--image", choices=IMAGE_KINDS, default="8bit", help="FBP folder: which images")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--overwrite", action="store_true", help="replace the model's existing source memory")
    m.set_defaults(func=cmd_memory)


def _labelled_data_options(p) -> None:
    p.add_argument("source", nargs="?", help="dataset root with Image__8bit_NirRGB/ and Annotation__index/")
    p.add_argument("--images", nargs="+", metavar="RASTER", help="or: image rasters (NIR, R, G, B bands)")
    p.add_argument("--labels", nargs="+", metavar="RASTER",
                   help="their label rasters, in the same order (FBP classes, or --class-mapping)")
    p.add_argument("--sensor", default="auto", help="the image rasters' sensor (as for map)")
    p.add_argument("--class-mapping", metavar="JSON",
                   help='the label rasters\' values as FBP classes: {"their value": FBP index or name}')
    p.add_argument("--gsd", type=float, metavar="METRES",
                   help="image rasters: working pixel size (default: the sensor profile's)")


def cmd_adapt(args, progress) -> int:
    from ..training.adapt import adapt
    from ..training.config import AdaptOptions

    (out,) = check_outputs([("adapted model", args.output, None)],
                           [("model", args.model), *(("target image", t) for t in args.target)],
                           args.overwrite, make_folder=True)
    source: object
    if args.source in (None, "memory"):
        source = None  # the checkpoint's source memory when present, else source-free
    elif args.source == "none":
        source = False
    else:
        if not os.path.exists(args.source):
            raise FbpError(f"The source {args.source} does not exist; give an FBP folder, "
                           "a .memory.npz file, 'memory' or 'none'.")
        source = args.source
    given = {"iterations": args.iterations, "seconds": args.seconds, "method": args.method, "lr": args.lr,
             "batch_size": args.batch_size, "patch": args.patch, "device": args.device, "seed": args.seed,
             "class_quota": args.class_quota, "teacher": args.teacher, "mix": args.mix,
             "bn_target_share": args.bn_target_share}
    config = AdaptOptions(guard=not args.no_guard, **{k: v for k, v in given.items() if v is not None})
    card = adapt(args.model, list(args.target), out=out, config=config, source=source, sensor=args.sensor,
                 stats=args.stats, models_dir=args.models_dir, progress=progress)
    progress.close()
    p = card.provenance
    print(f"Adapted model: {out}")
    print(f"  method {p.get('method')}, {p.get('iterations')} iteration(s) in {p.get('seconds', 0):.1f} s; "
          f"source: {p.get('source_used')}")
    print(f"  final pseudo-label share {p.get('final_pseudo_label_share', 0):.1%}")
    if p.get("guard_verdict"):
        print(f"  {p['guard_verdict']['sentence']}")
    return EXIT_OK


def cmd_evaluate(args, progress) -> int:
    from ..assessment.evaluate import MAPPING_WORDS, evaluate

    prefix = Path(args.output)
    check_outputs([(f"{ext.upper()} report", prefix.with_name(prefix.name + "." + ext), None)
                   for ext in ("json", "csv", "md")],
                  [("map", args.map), ("reference", args.reference),
                   ("reference mapping", None if args.mapping in MAPPING_WORDS else args.mapping)],
                  args.overwrite, make_folder=True)
    result = evaluate(args.map, args.reference, reference_mapping=args.mapping, collapse=args.collapse,
                      out_prefix=str(prefix), reference_field=args.field, reference_layer=args.layer,
                      progress=progress)
    progress.close()

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    print(f"Accuracy of {args.map} against {args.reference} ({result['legend']} legend, "
          f"{result['pixels']} pixels, {result['classes_in_reference']} classes in the reference)")
    print(f"  OA {f(result['overall_accuracy'])}  kappa {f(result['kappa'])}  mIoU "
          f"{f(result['miou_present'])}  mF1 {f(result['mf1_present'])}")
    for ext, path in result["outputs"].items():
        print(f"  {ext}: {path}")
    return EXIT_OK


def cmd_demo(args, progress) -> int:
    from ..demo import run_demo

    summary = run_demo(args.out, seed=args.seed, quick=args.quick, overwrite=args.overwrite,
                       progress=progress)
    progress.close()
    print(summary["text"])
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "text"}, indent=2, default=str))
    return EXIT_OK


def add_commands(sub) -> None:
    """Add train, adapt, evaluate and demo to the ``fbp-landcover`` subparsers."""
    t = sub.add_parser("train", help="train a model on labelled source data: a Five-Billion-Pixels folder, "
                                     "or your own image and label rasters")
    _labelled_data_options(t)
    t.add_argument("-o", "--output", required=True, help="model file to write (.fbpmodel)")
    t.add_argument("--epochs", type=int, default=120)
    t.add_argument("--iterations-per-epoch", type=int, help="default: the 512/384 patch grid / batch size")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--patch", type=int, default=512)
    t.add_argument("--arch", default="fbp_unet", help="a preset (fbp_unet: the authors' U-Net; compact: "
                                                      "fastest on CPUs; mobile_unet; "
                                                      "standard) or an smp architecture such as Unet, "
                                                      "DeepLabV3Plus (then --encoder, --encoder-depth, "
                                                      "--decoder-channels apply)")
    t.add_argument("--encoder", default="resnet18", help="smp/timm encoder for smp architectures")
    t.add_argument("--encoder-depth", type=int, help="smp encoder depth (3..5)")
    t.add_argument("--decoder-channels", help="smp Unet decoder channels, e.g. 64,32,16,16")
    t.add_argument("--lr", type=float, default=0.005)
    t.add_argument("--class-aware", action="store_true", help="sample patches around rare classes more often")
    t.add_argument("--stats", default=TrainConfig.stats, choices=TRAIN_STATS,
                   help="normalise each scene with its own statistics (scene, the default, as map does) or "
                        "with the fixed FBP statistics (source, as the authors' code)")
    t.add_argument("--image", default="8bit", choices=IMAGE_KINDS)
    t.add_argument("--val-patches", type=int, default=500)
    t.add_argument("--device", default="auto", choices=DEVICES)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue from <model>.resume.pt")
    t.add_argument("--overwrite", action="store_true")
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("adapt", help="adapt a model to target images without labels (DPA)")
    a.add_argument("model", help="our .fbpmodel file or a registered name")
    a.add_argument("target", nargs="+", help="target raster(s)")
    a.add_argument("-o", "--output", required=True, help="adapted model file to write (.fbpmodel)")
    a.add_argument("--source", help="FBP dataset folder, a .memory.npz file, 'memory' "
                                    "(the model's own source memory; the default) or 'none' (source-free)")
    a.add_argument("--iterations", type=int)
    a.add_argument("--seconds", type=float, help="time budget instead of iterations")
    a.add_argument("--method", choices=METHODS)
    a.add_argument("--class-quota", type=float, metavar="SHARE",
                   help="reserve this share of the pseudo-labels for per-class quotas (0..1)")
    a.add_argument("--teacher", type=float, metavar="MOMENTUM",
                   help="pseudo-labels from a mean teacher, the EMA of the weights with this momentum (e.g. "
                        "0.95; default 0: the student's own; bench/README.md)")
    a.add_argument("--mix", choices=MIXES, help="Siamese: paste half of a source patch's classes onto each "
                                                "target patch (classmix; default none)")
    a.add_argument("--bn-target-share", type=float, metavar="SHARE",
                   help="bn, bn+kl: the share of target statistics in the re-estimated BatchNorm (0..1)")
    a.add_argument("--lr", type=float)
    a.add_argument("--batch-size", type=int)
    a.add_argument("--patch", type=int)
    a.add_argument("--sensor", default="auto")
    a.add_argument("--stats", default="scene")
    a.add_argument("--device", choices=DEVICES)
    a.add_argument("--seed", type=int)
    a.add_argument("--no-guard", action="store_true", help="keep the adapted weights even when the guard's "
                   "checks say the adaptation went wrong (default: save the source weights and say so)")
    a.add_argument("--models-dir")
    a.add_argument("--overwrite", action="store_true")
    a.set_defaults(func=cmd_adapt)

    e = sub.add_parser("evaluate", help="accuracy of a class map against a reference raster or vector")
    e.add_argument("map", help="class GeoTIFF written by fbp-landcover map")
    e.add_argument("reference", help="reference raster, or points/polygons with a class field")
    e.add_argument("-o", "--output", required=True, metavar="PREFIX", help="writes PREFIX.json, .csv and .md")
    e.add_argument("--mapping", help="JSON file mapping reference values to FBP (or legend) classes; or "
                                     "'fbp' (the reference holds FBP classes 1..24) or 'collapsed' (it holds "
                                     "the --collapse legend's codes)")
    e.add_argument("--collapse", help="score in a coarser legend: gid5, coarse, or a legend JSON file")
    e.add_argument("--field", help="attribute holding the class of a vector reference")
    e.add_argument("--layer", help="layer of a vector reference with several (default: the first)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("demo", help="end-to-end demonstration on generated (synthetic) data: train, adapt, "
                                    "map and evaluate, in a few minutes on a CPU")
    d.add_argument("--out", default="demo_out", help="folder for every output (default: demo_out)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier demo run there")
    d.add_argument("--quick", action="store_true", help="a much smaller run (under a minute; for tests)")
    d.add_argument("--json", action="store_true", help="also print the summary as JSON")
    d.set_defaults(func=cmd_demo)
