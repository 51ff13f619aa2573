"""``isodeploy finetune`` as one call: check the inputs, build the run, train epoch by epoch, save.

Run it alone or under ``torchrun`` (DistributedDataParallel; rank 0 alone logs and writes). Import it
from Python as ``isodeploy.train.loop.run_finetune(FinetuneConfig(...))``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from isodeploy.core.errors import IsodeployError
from isodeploy.train import checkpoint as ck
from isodeploy.train.config import EvalResult, FinetuneConfig, FinetuneReport
from isodeploy.train.data import (
    EpochSampler,
    ImageDataset,
    ImageSet,
    ShardSampler,
    eval_transform,
    make_loader,
    scan_usable,
    train_transform,
)
from isodeploy.train.dist import DistEnv, init_distributed, shutdown
from isodeploy.train.distill import load_teacher
from isodeploy.train.epoch import EpochStats, Trainer, train_one_epoch
from isodeploy.train.evaluate import evaluate
from isodeploy.train.optim import WarmupCosine, make_optimizer, resolve_precision
from isodeploy.train.progress import RunLog


def run_finetune(cfg: FinetuneConfig) -> FinetuneReport:
    """Fine-tune the student in ``cfg.student`` by distillation; see :class:`FinetuneConfig`."""
    cfg.validate()
    env = init_distributed(cfg.device)
    try:
        return _run(cfg, env)
    except IsodeployError:
        if env.distributed:  # the ranks leave together, so torchrun sees every rank exit 2
            from isodeploy.train.dist import leave_after_failure

            leave_after_failure()
        raise
    finally:
        shutdown(env)


def _load_student(folder: str):
    from isodeploy.pruning.spec import SPEC_FILE, load_folder, read_spec

    path = Path(folder)
    if not (path.is_dir() and (path / SPEC_FILE).is_file()):
        raise IsodeployError(f"'{folder}' is not an isodeploy folder; finetune takes the output of 'isodeploy prune'")
    return load_folder(path), read_spec(path)


def _prepare_output(cfg: FinetuneConfig, env: DistEnv) -> Path:
    """Refuse to overwrite an earlier run by accident (``--force`` clears it later, once the inputs are checked)."""
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise IsodeployError(f"-o {out} is a file; give a folder path")
    if out.is_dir():
        from isodeploy.core.output_folder import refuse_links

        refuse_links(out, ck.RUN_FILES)  # a linked checkpoint.pt, best/ or samples/ is never written through
    if out.resolve() == Path(cfg.student).resolve():
        raise IsodeployError("-o must differ from the student folder DIR; fine-tuned students go to OUT/best and OUT/last")
    resuming = cfg.resume or cfg.resume_from is not None
    if (out / ck.CHECKPOINT_FILE).exists() and not (resuming or cfg.force):
        raise IsodeployError(f"-o {out} holds a run already; pass --resume to continue it or --force to start over")
    return out


def _check_classes(data: ImageSet, val: ImageSet | None, num_classes: int, teacher: str) -> None:
    """Labels must index the model's outputs; unlabeled data needs a teacher."""
    for images, flag in ((data, "--data"), (val, "--val")):
        if images is not None and images.labelled and len(images.classes) != num_classes:
            raise IsodeployError(f"{flag} '{images.root}' has {len(images.classes)} class folders but the model outputs "
                                 f"{num_classes} classes; give a set with the model's classes")
    if val is not None and not val.labelled:
        raise IsodeployError(f"--val '{val.root}' has no class folders; accuracy needs an ImageFolder tree (VAL/<class>/*.jpg)")
    if data.labelled and val is not None and data.classes != val.classes:
        diff = next(a for a, b in zip(data.classes, val.classes) if a != b)
        raise IsodeployError(f"--data and --val name different classes (first difference: '{diff}'); use the same class folders")
    if not data.labelled and teacher == "none":
        raise IsodeployError(f"--data '{data.root}' is unlabeled (no class folders), so it needs a teacher; drop --teacher none")


def _finetune_section(cfg: FinetuneConfig, env: DistEnv, epoch: int, line: dict[str, Any], teacher: str) -> dict[str, Any]:
    return {"from": str(cfg.student), "epoch": epoch, "epochs": cfg.epochs, "data": str(cfg.data), "val": cfg.val,
            "teacher": teacher, "lr": cfg.lr, "batch_size": cfg.batch_size, "world_size": env.world,
            "temperature": cfg.temperature, "kd_weight": cfg.kd_weight, "ema_decay": cfg.ema_decay, "metrics": line}


def _eval_fields(prefix: str, result: EvalResult | None) -> dict[str, float]:
    if result is None:
        return {}
    return {f"{prefix}_top1": result.top1, f"{prefix}_top5": result.top5, f"{prefix}_loss": result.loss}


def _epoch_line(epoch: int, stats: EpochStats, val: EvalResult | None, raw: EvalResult | None) -> dict[str, Any]:
    line: dict[str, Any] = {"epoch": epoch, "lr": stats.lr, "train_loss": stats.loss, "images": stats.images,
                            "skipped": stats.skipped, "seconds": round(stats.seconds, 3),
                            "images_per_s": round(stats.images / max(stats.seconds, 1e-9), 1)}
    if stats.kd is not None:
        line["train_kd"] = stats.kd
    if stats.ce is not None:
        line["train_ce"] = stats.ce
    return line | _eval_fields("val", val) | _eval_fields("raw_val", raw)


def _run(cfg: FinetuneConfig, env: DistEnv) -> FinetuneReport:
    started = time.perf_counter()
    log = RunLog(env.is_main)
    student, spec = _load_student(cfg.student)
    out = _prepare_output(cfg, env)
    data = scan_usable(cfg.data, env, "--data")
    val = scan_usable(cfg.val, env, "--val") if cfg.val else None
    num_classes = int(student.num_classes)
    _check_classes(data, val, num_classes, cfg.teacher)
    for images, flag in ((data, "--data"), (val, "--val")):
        if images is not None and images.skipped:
            log.warn(f"skipped {images.skipped} unreadable image(s) in {flag} '{images.root}'")
    teacher = load_teacher(cfg.teacher, student, spec, cfg.teacher_weights)
    teacher_name = "none" if teacher is None else (f"{teacher.timm_name} ({teacher.weights})")

    torch.manual_seed(cfg.seed)
    pcfg = getattr(student.model, "pretrained_cfg", None) or {}
    interp, crop_pct = pcfg.get("interpolation", "bicubic"), float(pcfg.get("crop_pct", 0.875))
    size, mean, std = tuple(student.input_size), tuple(student.mean), tuple(student.std)
    augment = train_transform(cfg.aug, size, mean, std, interp, crop_pct)
    train_set = ImageDataset(data, augment, cfg.seed, augment=cfg.aug != "none")
    sampler = EpochSampler(len(train_set), env, cfg.seed)
    loader = make_loader(train_set, sampler, cfg.batch_size, cfg.workers, env, drop_last=True)
    if len(loader) == 0:
        raise IsodeployError(f"--batch-size {cfg.batch_size} is larger than each process's share of --data "
                             f"({len(sampler)} of {len(data.paths)} images); lower --batch-size")
    val_loader = None
    if val is not None:
        val_set = ImageDataset(val, eval_transform(size, mean, std, interp, crop_pct), cfg.seed, augment=False)
        val_loader = make_loader(val_set, ShardSampler(len(val_set), env), cfg.batch_size, cfg.workers, env, drop_last=False)

    precision = resolve_precision(cfg.amp, env.device)
    plain = student.model.to(env.device).train()
    model = plain
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(plain, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    teacher_model = teacher.model.to(env.device).eval() if teacher is not None else None
    optimizer = make_optimizer(plain, cfg.lr, cfg.weight_decay)
    steps = len(loader)
    scheduler = WarmupCosine(optimizer, cfg.lr, cfg.min_lr, round(cfg.warmup_epochs * steps), cfg.epochs * steps)
    scaler = precision.scaler()
    ema = None
    if cfg.ema_decay > 0:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(plain, decay=cfg.ema_decay)
    trainer = Trainer(model, plain, teacher_model, loader, sampler, optimizer, scheduler, scaler, ema, precision, env,
                      data.labelled, cfg.temperature, cfg.kd_weight, cfg.clip_grad, cfg.seed)

    settings = cfg.result_settings(env.world) | {"data": str(Path(cfg.data).resolve()),
                                                 "val": str(Path(cfg.val).resolve()) if cfg.val else None}
    identity = ck.fingerprint(plain, student.timm_name)
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "value": None}
    start_epoch = 1
    teacher_val = pruned_val = None
    resumed = cfg.resume or cfg.resume_from is not None
    if resumed:
        source = Path(cfg.resume_from) if cfg.resume_from else out / ck.CHECKPOINT_FILE
        state = ck.load_checkpoint(source, identity, settings)
        plain.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        history, best, start_epoch = list(state["history"]), dict(state["best"]), int(state["epoch"]) + 1
        teacher_val = EvalResult(**state["teacher_val"]) if state.get("teacher_val") else None
        pruned_val = EvalResult(**state["pruned_val"]) if state.get("pruned_val") else None
        log.info(f"resuming {source} after epoch {start_epoch - 1} of {cfg.epochs}")
    else:
        if cfg.force and env.is_main:  # every input checked: now the earlier run may go
            ck.clear_run(out)
        env.barrier()
    if not resumed and val_loader is not None:
        with log.status("evaluating the teacher and the pruned student on --val"):
            teacher_val = evaluate(teacher_model, val_loader, env, precision) if teacher_model is not None else None
            pruned_val = evaluate(plain, val_loader, env, precision)
    if not history:
        history.append({"epoch": 0, "images": len(data.paths), "skipped": data.skipped}
                       | _eval_fields("val", pruned_val) | _eval_fields("teacher_val", teacher_val))
        log.baseline(pruned_val, teacher_val)
    resumed_from = start_epoch - 1
    last_epoch = min(cfg.epochs, cfg.stop_after or cfg.epochs)
    metric = "val_top1" if val_loader is not None else "train_loss"
    final_val = None
    log.info(f"fine-tuning {student.timm_name} from {cfg.student}: {len(data.paths)} images, {env.world} process(es) on "
             f"{env.device.type}, {precision.name}, teacher {teacher_name}, {cfg.epochs} epochs × {steps} steps")
    with log.progress() as bar:
        for epoch in range(start_epoch, last_epoch + 1):
            task = bar.start(epoch, cfg.epochs, steps) if bar else None
            stats = train_one_epoch(trainer, epoch, bar.progress if bar else None, task)
            saved_model = ema.module if ema is not None else plain
            final_val = evaluate(saved_model, val_loader, env, precision) if val_loader is not None else None
            raw = evaluate(plain, val_loader, env, precision) if (val_loader is not None and ema is not None) else None
            line = _epoch_line(epoch, stats, final_val, raw)
            value = line.get(metric)
            improved = best["value"] is None or (value > best["value"] if metric == "val_top1" else value < best["value"])
            if improved:
                best = {"epoch": epoch, "value": value}
            line["best"] = improved
            history.append(line)
            if cfg.log_samples:
                _log_samples(out, env.rank, epoch, stats.indices)
            if env.is_main:
                section = _finetune_section(cfg, env, epoch, line, teacher_name)
                if improved:
                    ck.save_student(out / ck.BEST_DIR, saved_model, spec, section)
                ck.save_student(out / ck.LAST_DIR, saved_model, spec, section)
                ck.write_metrics(out / ck.METRICS_FILE, history)
                ck.save_checkpoint(out / ck.CHECKPOINT_FILE, {
                    "epoch": epoch, "fingerprint": identity, "settings": settings, "model": plain.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "ema": ema.module.state_dict() if ema is not None else None, "best": best, "history": history,
                    "teacher_val": asdict(teacher_val) if teacher_val else None,
                    "pruned_val": asdict(pruned_val) if pruned_val else None})
                log.epoch(line, cfg.epochs, metric)
            env.barrier()
    if env.is_main and not (out / ck.METRICS_FILE).exists():
        ck.write_metrics(out / ck.METRICS_FILE, history)
    report = FinetuneReport(
        student=str(cfg.student), output=str(out), teacher=teacher_name, world_size=env.world, device=str(env.device),
        epochs_planned=cfg.epochs, epochs_done=max(last_epoch, resumed_from), resumed_from_epoch=resumed_from,
        best_epoch=best["epoch"], best_metric=metric, best_value=best["value"] if best["value"] is not None else float("nan"),
        teacher_val=teacher_val, pruned_val=pruned_val, final_val=final_val if final_val is not None else _last_val(history),
        train_images=len(data.paths), skipped_images=data.skipped + sum(int(h.get("skipped", 0)) for h in history[1:]),
        seconds=round(time.perf_counter() - started, 3), best_dir=str(out / ck.BEST_DIR), last_dir=str(out / ck.LAST_DIR),
        checkpoint=str(out / ck.CHECKPOINT_FILE), metrics_file=str(out / ck.METRICS_FILE), history=history)
    if env.is_main:
        ck.write_json(out / ck.SUMMARY_FILE, asdict(report))
        log.done(report)
    return report


def _last_val(history: list[dict[str, Any]]) -> EvalResult | None:
    """The latest validation figures in the history (a resumed run that trains no further epoch)."""
    for line in reversed(history[1:]):
        if "val_top1" in line:
            return EvalResult(line["val_top1"], line["val_top5"], line["val_loss"], 0)
    return None


def _log_samples(out: Path, rank: int, epoch: int, indices: list[int]) -> None:
    """Append this rank's trained indices to ``OUT/samples/rank-N.jsonl`` (checks of the data sharding)."""
    import json

    folder = out / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"rank-{rank}.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": epoch, "rank": rank, "indices": indices}) + "\n")
