"""The run: validate → load data → start tracking → stages → closing table.

Stages run in the configured order: ``evaluate_base``, ``train``, ``evaluate_tuned``, ``compare``.
Each finished stage is recorded in ``<run_dir>/state.json``; ``resume=<run_dir>`` skips finished
stages (predictions are read back from the folder) and continues the same MLflow run.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ftlab import evaluate as ev
from ftlab import manifest, plots
from ftlab.config import RunConfig, Stage
from ftlab.config.compose import check_capabilities, decoding_for, plain_config, unused_train_keys, validate
from ftlab.contract import (Capabilities, ModelRef, NativeEvaluator, Prediction, Predictions, Pruned,
                            RunContext, TrainJob)
from ftlab.data import load_data, skipped_summary
from ftlab.paths import atomic_open, atomic_write_text
from ftlab.plugins import PluginError, get_plugins
from ftlab.prompt import make_prompt
from ftlab.runs import mark_process
from ftlab.scoring import TABLES, Scorer
from ftlab.tracking.mlflow_tracker import Tracker, TrackingError, flatten
from ftlab.tracking.redact import redact_config, redact_uri

log = logging.getLogger("ftlab")


class StageError(RuntimeError):
    pass


RUN_FOLDER_FILES = ("config.yaml", "manifest.json")
"""What every run folder has from its first second on (``state.json`` comes after a stage)."""


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageError(f"{path} is not valid JSON ({exc}); it is written atomically by ftlab, "
                         f"so this folder was changed by something else") from None
    if not isinstance(state, dict):
        raise StageError(f"{path} does not hold a JSON object")
    uri = str((state.get("trained") or {}).get("uri") or "")
    if uri:  # a resume loads the tuned model it names: only from inside this run folder
        from ftlab.contain import OutsideFolder, inside, is_local_path

        try:
            if is_local_path(uri):
                inside(path.parent, uri, f"{path} ('trained')")
        except OutsideFolder as exc:
            raise StageError(str(exc)) from None
    return state


def load_predictions(path: Path, ref: ModelRef) -> Predictions:
    """A ``predictions.jsonl`` written by :func:`ftlab.evaluate.write_files`, read back (resume)."""
    sent = path.with_name("prompts.jsonl")
    prompts = {r["sha256"]: r["text"] for r in map(json.loads, sent.read_text(encoding="utf-8").splitlines())} \
        if sent.exists() else {}
    items = (Prediction.from_json(json.loads(line), prompts)
             for line in path.read_text(encoding="utf-8").splitlines())
    return Predictions(model=ref, items=tuple(items))


class Run:
    """State of one run; ``execute`` does the work."""

    def __init__(self, cfg: RunConfig, resolved_yaml: str, run_dir: Path, plugins=None) -> None:
        self.cfg, self.yaml, self.run_dir = cfg, resolved_yaml, run_dir
        self.plugins = plugins or get_plugins()
        self.stages = cfg.stage_order()
        self.state_path = run_dir / "state.json"
        self.state: dict[str, Any] = _read_state(self.state_path)
        self.scored: dict[tuple[str, str], Any] = {}
        """(stage, split) → its scores (ftlab.evaluate.Scored, or TextScored for a generation task)."""
        self.comparisons: dict[str, Any] = {}
        self.cv = None
        """The :class:`ftlab.cv.CVResult` when the run cross-validated."""
        self.history: list = []
        self.extra_tags: dict[str, str] = {}
        """Tags added at start, e.g. ``mlflow.parentRunId`` for a job of a sweep."""
        self.runtime: dict[str, str] = {}
        """What the backend reported about how it runs (its tags), shown in the closing summary."""
        self.fallbacks = check_capabilities(cfg, self.plugins)
        """Documented fallbacks the backend applies to this config (tagged, in the manifest, printed)."""
        self.unused_train_keys = unused_train_keys(cfg, self.plugins)
        """``train.*`` settings the backend declares it does not use (tagged, in the manifest, printed)."""

    # -- helpers -----------------------------------------------------------------------------------
    def _save_state(self) -> None:
        atomic_write_text(self.state_path, json.dumps(self.state, indent=1))

    def _evaluate(self, stage: str, ref: ModelRef) -> None:
        cfg = self.cfg
        for split in cfg.eval.splits:
            key = f"{stage}/{split}"
            out = self.run_dir / "eval" / stage / split
            examples = self.splits[split].examples
            if key in self.state.get("evaluated", []) and (out / "predictions.jsonl").exists():
                preds = load_predictions(out / "predictions.jsonl", ref)
                log.info("resume: %s predictions read back from %s", key, out)
            else:
                t0 = time.perf_counter()
                preds = self.backend.predict(ref, examples, self.prompt, decoding_for(cfg, self.fallbacks))
                self.tracker.log_metrics({f"time/predict_{stage}_{split}_s": time.perf_counter() - t0})
                # "cost/bytes_billed" → "cost/base/eval/bytes_billed"
                self.tracker.log_metrics({
                    (f"{k.split('/', 1)[0]}/{stage}/{split}/{k.split('/', 1)[1]}" if "/" in k
                     else f"{k}/{stage}/{split}"): v for k, v in preds.metrics.items()})
            scored = self.scorer.score(stage, split, examples, preds)
            self.scored[(stage, split)] = scored
            self.tracker.log_metrics(self.scorer.metric_dict(scored))
            for f in self.scorer.write_files(scored, examples, out):
                self.tracker.log_artifact(f, f"eval/{stage}/{split}")
            if self.native and key not in self.state.get("native", []):
                nm = self.backend.native_evaluate(ref, examples, self.prompt)
                self.tracker.log_metrics({f"native/{stage}/{split}/{k}": v for k, v in nm.items()})
                self.state.setdefault("native", []).append(key)
            if key not in self.state.setdefault("evaluated", []):
                self.state["evaluated"].append(key)
            self._save_state()

    def _train(self) -> ModelRef:
        if "trained" in self.state:
            log.info("resume: training already finished, adapter %s", self.state["trained"]["uri"])
            return ModelRef.from_json(self.state["trained"])
        out = self.run_dir / "train"
        out.mkdir(parents=True, exist_ok=True)
        job = TrainJob(train=self.splits["train"].examples,
                       eval=self.splits[self.cfg.eval.splits[0]].examples,
                       prompt=self.prompt, out_dir=out)
        t0 = time.perf_counter()
        trained = self.backend.train(job)
        self.tracker.log_metrics({"time/train_wall_s": time.perf_counter() - t0, **trained.metrics})
        self.history = list(trained.history)
        atomic_write_text(out / "history.json", json.dumps(self.history, indent=1))
        png = plots.loss_png(self.history, out / "loss.png")
        for f in [out / "history.json", png]:
            if f is not None:
                self.tracker.log_artifact(f, "train")
        if self.cfg.tracking.log_adapter:
            for a in trained.artifacts:
                self.tracker.log_artifact(Path(a), "model")
        self.state["trained"] = trained.model.to_json()
        self._save_state()
        # a later process (ftlab predict, replay) can find the tuned model from MLflow alone
        self.tracker.set_tags({"ftlab.trained_model": json.dumps(self.state["trained"])})
        self.tracker.log_artifact(self.state_path)
        return trained.model

    def _compare(self) -> None:
        for split in self.cfg.eval.splits:
            base, tuned = self.scored.get(("base", split)), self.scored.get(("tuned", split))
            if base is None or tuned is None:
                raise StageError("stage 'compare' needs 'evaluate_base' and 'evaluate_tuned' "
                                 "in the same run (or a resumed run that has both)")
            metrics, self.comparisons[split], files = self.scorer.compare(base, tuned, split,
                                                                          self.run_dir / "compare" / split)
            self.tracker.log_metrics({f"compare/{split}/{k}": v for k, v in metrics.items()})
            for f in files:
                self.tracker.log_artifact(f, f"compare/{split}", table=f.name in TABLES)

    def _log_skipped(self) -> None:
        """data.on_error=skip: counts per split and reason, the skipped lines, and a warning."""
        metrics, rows = skipped_summary(self.splits)
        if not rows:
            return
        path = self.run_dir / "data" / "skipped_rows.jsonl"
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        self.tracker.log_metrics(metrics)
        self.tracker.log_artifact(path, "data")
        counts = ", ".join(f"{k.split('/', 1)[1]}={int(v)}" for k, v in metrics.items())
        log.warning("data.on_error=skip: left out %d bad rows (%s); the lines are in %s",
                    len(rows), counts, path)

    # -- the run -----------------------------------------------------------------------------------
    def execute(self) -> float:
        self._t0 = time.perf_counter()
        cfg = self.cfg
        info = self.plugins.backend(cfg.backend.name)
        self.data = load_data(cfg.data, cfg.eval.splits, target=self.plugins.task(cfg.eval.task).target,
                              need_train=bool({"train", "cross_validate"} & set(self.stages)))
        self.splits = self.data.splits
        cfg.data.labels, self.yaml = list(self.data.labels), self.data.config_yaml(self.yaml)  # auto → list
        self.prompt = make_prompt(cfg.prompt, cfg.data.labels)
        self.scorer = Scorer.for_run(cfg, self.plugins, self.prompt)
        random.seed(cfg.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        mark_process(self.run_dir)  # with the journal's end marker: a killed run is told from a live one
        if not cfg.resume:  # a resumed run keeps the config.yaml it began with (checked unchanged)
            atomic_write_text(self.run_dir / "config.yaml", self.yaml)
        man = manifest.build(self.yaml, self.splits, self.prompt, cfg.data.labels, cfg,
                             dists=(info.distribution, *info.distributions))
        man.update(self.data.manifest())  # data_labels (labels=auto), data_split (eval_fraction)
        man["fallbacks"] = [f.to_json() for f in self.fallbacks]
        man["unused_train_keys"] = self.unused_train_keys
        honoured = info.capabilities.train_keys if info.capabilities is not None else None
        man["train_keys"] = dict(honoured) if honoured is not None else None
        atomic_write_text(self.run_dir / "manifest.json", json.dumps(man, indent=1))
        atomic_write_text(self.run_dir / "labels.json", json.dumps(ev.slug_map(cfg.data.labels), indent=1))
        t = cfg.tracking
        self.tracker = Tracker(self.run_dir, t.enabled, t.uri, t.experiment_name or cfg.experiment,
                               t.run_name or f"{cfg.experiment}-{cfg.model.name}-{self.run_dir.name}")
        self.tracker.start({"ftlab.backend": cfg.backend.name, "ftlab.model": cfg.model.name,
                            "ftlab.run_dir": str(self.run_dir), "mlflow.source.git.commit":
                            man["git"]["sha"], "ftlab.prompt_sha256": man["prompt_sha256"],
                            "ftlab.label_set_sha256": man["label_set_sha256"], **self.extra_tags,
                            **{f"ftlab.fallback.{f.key}": f.describe()[:5000] for f in self.fallbacks},
                            **({"ftlab.unused_train_keys": " ".join(self.unused_train_keys)[:5000]}
                               if self.unused_train_keys else {}),
                            **({"ftlab.train_keys": " ".join(sorted(honoured))[:5000]} if honoured is not None
                               else {})},
                           resume=bool(cfg.resume))
        self.plugins.run_started(cfg, self.run_dir)
        for f in self.fallbacks:
            log.warning("backend %s: fallback %s", cfg.backend.name, f.describe())
        if self.unused_train_keys:
            log.warning("backend %s does not use %s (`ftlab plugins` lists the train keys it honours)",
                        cfg.backend.name, ", ".join(self.unused_train_keys))
        try:
            if "params_logged" not in self.state or not self.tracker.reopened:
                self.tracker.log_params(flatten(OmegaConf.to_container(OmegaConf.create(self.yaml))))
                self.state["params_logged"] = True
            for f in ("config.yaml", "manifest.json", "labels.json"):
                self.tracker.log_artifact(self.run_dir / f)
            self._log_skipped()
            self.data.write_files(self.run_dir, self.tracker.log_artifact)  # data/split.json (eval_fraction)
            caps = info.capabilities or Capabilities()
            self.ctx = ctx = RunContext(self.run_dir, self.tracker.log_metrics, self._backend_tags,
                                        self.tracker.log_artifact, report=self._reporter(caps))
            self.backend = info.factory(cfg, ctx)
            self.native = caps.native_evaluate
            if self.native and not isinstance(self.backend, NativeEvaluator):
                raise PluginError(f"backend {info.name!r} declares native_evaluate but has no "
                                  f"native_evaluate(model, examples, prompt) method")
            tuned: Optional[ModelRef] = (ModelRef.from_json(self.state["trained"]) if "trained" in self.state
                                         else None)
            for stage in self.stages:
                log.info("stage %s", stage)
                if stage == Stage.evaluate_base.value:
                    self._evaluate("base", self.backend.base_model())
                elif stage == Stage.cross_validate.value:
                    from ftlab.cv import CrossValidation

                    self.cv = CrossValidation(self).execute()
                elif stage == Stage.train.value:
                    tuned = self._train()
                elif stage == Stage.evaluate_tuned.value:
                    if tuned is None:
                        raise StageError("stage 'evaluate_tuned' needs a tuned model: add 'train' "
                                         "to stages or resume a run that trained")
                    self._evaluate("tuned", tuned)
                elif stage == Stage.compare.value:
                    self._compare()
        except Pruned as exc:
            return self._pruned(exc)
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            self.tracker.end(status, error=f"{type(exc).__name__}: {exc}")
            self.plugins.run_finished(cfg, self.run_dir, {"status": status, "error": str(exc)})
            raise
        return self._finish()

    def _reporter(self, caps: Capabilities):
        """``RunContext.report``: the trial's pruner in a job of a pruned Optuna search, else a no-op."""
        from ftlab.sweeps.prune import job_reporter

        reporter = job_reporter(self.cfg, caps.intermediate_values)
        if reporter is None:
            return lambda values, step: None
        self.tracker.set_tags({"ftlab.optuna.trial": str(reporter.number)})
        return reporter

    def _pruned(self, exc: Pruned) -> float:
        """A run its sweep stopped early: MLflow status KILLED + tag ``ftlab.pruned``; objective NaN."""
        log.warning("run pruned: %s", exc)
        self.tracker.set_tags({"ftlab.pruned": "true", "ftlab.pruned_at_step": str(exc.step)})
        self.tracker.end("KILLED")
        self.plugins.run_finished(self.cfg, self.run_dir, {"status": "PRUNED"})
        print(f"run pruned ({exc}); run folder: {self.run_dir}")
        return float("nan")

    def _backend_tags(self, tags) -> None:
        """Tags a backend sets (device, dtype and why, threads …): to MLflow, to the manifest's
        ``backend_runtime`` section and to the closing summary. ``model.*`` tags (the weights'
        ``path`` and ``sha256``, the tokenizer's hash …) go to the manifest's ``model`` section,
        which ``ftlab replay`` checks against the file on disk."""
        model = {k[len("model."):]: str(v) for k, v in tags.items() if k.startswith("model.")}
        self.runtime.update({k: str(v) for k, v in tags.items() if not k.startswith("model.")})
        self.tracker.set_tags(tags)
        path = self.run_dir / "manifest.json"
        if path.is_file():
            man = json.loads(path.read_text())
            man["backend_runtime"] = self.runtime
            if model:
                man["model"] = {**(man.get("model") or {}), **model}
            atomic_write_text(path, json.dumps(man, indent=1))

    def _finish(self) -> float:
        from ftlab.summary import closing_table, cv_table, text_table

        split = self.cfg.eval.splits[0]
        base, tuned = self.scored.get(("base", split)), self.scored.get(("tuned", split))
        headline: dict[str, float] = {}
        last = tuned or base
        key = self.scorer.objective_key  # macro_f1, or a generation task's first headline metric
        if last is not None:
            if self.scorer.generative:
                text_table(base, tuned, self.scorer.task.headline, self.comparisons.get(split))
            else:
                closing_table(base, tuned, self.prompt.labels, self.comparisons.get(split))
            headline = {f"{last.stage}_{key}": self.scorer.headline(last)[key]}
        if self.cv is not None:
            cv_table(self.cv, self.scorer.task.headline if self.scorer.generative else None)
            headline[f"cv_{key}_mean"] = self.cv.summary[f"{key}_mean"]
        if self.runtime:
            print("backend: " + "; ".join(f"{k}={v}" for k, v in sorted(self.runtime.items())))
        for f in self.fallbacks:
            print(f"fallback ({self.cfg.backend.name}): {f.describe()}")
        if self.tracker.enabled:  # the overhead of MLflow logging (target: <= 2 % of the run)
            wall = time.perf_counter() - self._t0
            share = self.tracker.seconds / wall if wall > 0 else 0.0
            self.tracker.log_metrics({"time/tracking_s": self.tracker.seconds, "time/run_wall_s": wall,
                                      "time/tracking_share": share})
            print(f"MLflow logging: {self.tracker.seconds:.1f} s of {wall:.0f} s ({100 * share:.1f} %)")
        self.tracker.end("FINISHED")
        self.plugins.run_finished(self.cfg, self.run_dir, {"status": "FINISHED", **headline})
        print(f"run folder: {self.run_dir}")
        if self.tracker.run_id:
            print(f"MLflow run: {self.tracker.run_id} ({redact_uri(self.tracker.uri)})"
                  + (f", incomplete: ftlab sync {self.run_dir}" if self.tracker.broken else ""))
        if self.tracker.broken and self.cfg.tracking.strict:
            raise TrackingError(f"tracking.strict=true and MLflow tracking failed during the run; "
                                f"the work is done and kept in {self.run_dir}: upload it with "
                                f"ftlab sync {self.run_dir}")
        if self.cv is not None:  # with cross-validation the default objective is its mean (selection on train)
            return self._objective(self.cv.summary[f"{key}_mean"])
        return self._objective(self.scorer.headline(last)[key] if last is not None else 0.0)

    def _objective(self, default: float) -> float:
        """The value Hydra sweepers optimise: metric ``sweep.objective`` (default: the cross-validated
        macro-F1 mean when the run cross-validated, else the last evaluated macro-F1)."""
        from ftlab.sweeps.context import objective_key

        if not self.cfg.sweep.objective:
            return default
        key = objective_key(self.cfg)
        if key not in self.tracker.last_metrics:
            log.warning("sweep.objective %r was not logged by this run; returning NaN", key)
        return self.tracker.last_metrics.get(key, float("nan"))


def run(cfg: DictConfig, run_dir: Optional[Path] = None, plugins=None) -> float:
    """Run one experiment from a composed config; returns the objective (last macro-F1)."""
    typed = validate(cfg)
    if typed.resume:
        run_dir = Path(typed.resume).expanduser()
        missing = [f for f in RUN_FOLDER_FILES if not (run_dir / f).is_file()]
        if missing:
            why = "no such folder" if not run_dir.is_dir() else f"no {' or '.join(missing)}"
            raise StageError(f"resume={typed.resume}: not an ftlab run folder ({why}); pass the "
                             f"folder a run printed as 'run folder: ...'")
    elif run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir)
    plain = plain_config(cfg, resolve=True)
    # config.yaml, the params and the manifest's hash see secrets masked; the run uses ``typed``
    plain = redact_config(plain)
    if typed.resume:  # the folder's stages are reused only for the config and inputs they were made with
        from ftlab import resume

        found = resume.problems(run_dir, OmegaConf.to_yaml(plain), typed)
        if found:
            raise StageError(resume.refusal(run_dir, found))
    job = Run(typed, OmegaConf.to_yaml(plain), run_dir, plugins)
    if typed.tracking.enabled and not typed.resume:
        from ftlab.sweeps.context import job_tags, job_tracking_uri
        from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

        resolved = resolve_tracking_uri(typed.tracking.uri)
        uri = job_tracking_uri(typed.tracking.uri, resolved)
        if uri != resolved:
            typed.tracking.uri = uri  # the sweep's store; the recorded config keeps what was configured
        job.extra_tags = job_tags(uri)
    return job.execute()
