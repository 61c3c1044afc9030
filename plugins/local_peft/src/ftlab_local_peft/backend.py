"""The ``local_peft`` backend: LoRA tuning and prediction with transformers + peft.

The base model and tokenizer are loaded once per backend instance. Training wraps the base with
peft in place; from then on base predictions run under ``disable_adapter()`` and tuned ones with
the adapter active, so evaluate_base → train → evaluate_tuned loads the weights once. A tuned
:class:`~ftlab.contract.ModelRef` names its adapter folder, which a new process loads with
``PeftModel.from_pretrained`` (for ``tiny_random`` the folder also holds the tokenizer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from ftlab.contract import Example, ModelRef, Prediction, Predictions, TrainedModel, TrainJob
from ftlab_local_peft import distributed, encoding, fsdp, inference, loading, loop, methods, quantization
from ftlab_local_peft.checkpoint import CHECKPOINT_DIR
from ftlab_local_peft.device import make_runtime
from ftlab_local_peft.features import store_for
from ftlab_local_peft.head import HEAD, attach_head
from ftlab_local_peft.methods import lora_cls
from ftlab_local_peft.modeling import split_layer

NAME = "local_peft"
TINY_TOKENIZER_DIR = "tiny_tokenizer"


class LocalPeftBackend:
    """Satisfies :class:`ftlab.contract.Backend`; built by the plugin's factory ``(cfg, ctx)``."""

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        self.group = distributed.setup(cfg.backend)  # before the device: one CUDA device per rank
        if fsdp.active(self.group):
            fsdp.refuse(cfg)  # before anything loads
        self.rt, tags = make_runtime(cfg.backend)
        self.rt = dataclasses.replace(self.rt, sharded=fsdp.active(self.group))
        if self.group.active:
            tags["local_peft.distributed"] = f"{self.group.mode}, {self.group.world} ranks"
        self.dtype_name, self.dtype_reason = tags["local_peft.dtype"], tags["local_peft.dtype_reason"]
        self.quantization, qtags = quantization.resolve(cfg, self.rt.info)  # before any weights load
        ctx.set_tags({**tags, **qtags})
        self.features = store_for(cfg.model, cfg.backend, self.rt)  # frozen prompt states, document means
        self._cls: dict[str, lora_cls.ClsMeta] = {}
        self._repeat = False  # the last training said more folds follow: keep the rows' frozen states
        self.source = loading.enum_value(cfg.model.source)
        self._tok = None
        self._base = None
        self._peft = None
        self._adapters: dict[str, str] = {}
        self._load_s = 0.0
        self._load_reported = False

    # ------------------------------------------------------------------ loading
    def _tiny_corpus(self, examples: Sequence[Example], prompt) -> list[str]:
        texts = [ex.text for ex in examples] + [ex.target for ex in examples]
        if prompt is not None:
            texts += list(prompt.labels) + [prompt.template, prompt.system]
        return texts + list(self.cfg.data.labels)

    def _saved_tokenizer(self, ref: ModelRef | None) -> Path | None:
        if self.source != loading.SOURCE_TINY:
            return None
        if ref is not None and ref.kind == "tuned" and ref.uri:
            if (Path(ref.uri) / "tokenizer.json").is_file():
                return Path(ref.uri)
        run_tok = Path(self.ctx.run_dir) / TINY_TOKENIZER_DIR
        return run_tok if (run_tok / "tokenizer.json").is_file() else None

    def _ensure_loaded(self, examples: Sequence[Example] = (), prompt=None, ref: ModelRef | None = None):
        saved = self._saved_tokenizer(ref)
        if self._tok is not None:
            if saved is not None and ref is not None and ref.kind == "tuned":
                other = loading.load_tokenizer(self.cfg.model, saved=saved)
                if other.get_vocab() != self._tok.get_vocab():
                    raise ValueError(f"adapter {ref.uri} was trained with another tiny tokenizer")
            return
        t0 = time.perf_counter()
        corpus = self._tiny_corpus(examples, prompt) if self.source == loading.SOURCE_TINY else None
        tok = loading.load_tokenizer(self.cfg.model, corpus=corpus, saved=saved,
                                     cache=self.cfg.backend.model_cache)
        if self.source == loading.SOURCE_TINY and saved is None:
            tok.save_pretrained(Path(self.ctx.run_dir) / TINY_TOKENIZER_DIR)
        if self.source == loading.SOURCE_TINY and self.group.active:  # every rank: rank 0's (a resumed
            here = Path(self.ctx.run_dir) / TINY_TOKENIZER_DIR     # rank 0 reads the one its folder kept)
            if self.group.main and not (here / "tokenizer.json").is_file():
                tok.save_pretrained(here)
            self.group.share(here, here)
            if not self.group.main:
                tok = loading.load_tokenizer(self.cfg.model, saved=here)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._tok = tok
        self.end_id = encoding.end_token_id(tok, self.cfg.backend.end_token)
        self.pad_id = tok.pad_token_id
        self._base = self._load_base()
        self._load_s = time.perf_counter() - t0

    def _load_base(self):
        """The base model on this rank's device, its identity tagged; under fsdp read by rank 0 into host
        memory and only each rank's shards placed on its device (:func:`fsdp.load_sharded`)."""
        import torch

        def load(device):
            model = loading.load_model(self.cfg.model, self.cfg.backend, device, len(self._tok), self._tok,
                                       self.quantization, self.rt.amp)
            self.ctx.set_tags(loading.model_identity(self.cfg.model, self._tok, model))  # whole weights' hash
            return model

        if not fsdp.active(self.group):
            return load(self.rt.device)
        model = fsdp.load_sharded(lambda: load(torch.device("cpu")), self.group, self.rt.device)
        here, whole = fsdp.weight_bytes(model)
        self.ctx.set_tags({"local_peft.fsdp_rank0_weights_gib": f"{here / 2**30:.4g}",
                           "local_peft.fsdp_whole_weights_gib": f"{whole / 2**30:.4g}"})
        return model

    def _load_metrics(self) -> dict[str, float]:
        if self._load_reported:
            return {}
        self._load_reported = True
        return {"time/load_s": self._load_s, "local_peft/bf16": float(self.rt.bf16)}

    def _method(self) -> str:
        return loading.enum_value(self.cfg.train.method)

    def _split_for_reuse(self) -> int:
        """Layer whose input the base evaluation should keep for a later lora_cls (-1: keep none)."""
        bc = self.cfg.backend
        if self._method() != "lora_cls" or not bc.reuse_base_states or self._base is None:
            return -1
        return split_layer(self._base, bc.train_layers)

    def _model_for(self, ref: ModelRef):
        """(module, context manager) that predicts with ``ref``: the base or one adapter."""
        if ref.backend != NAME:
            raise ValueError(f"local_peft cannot predict with a {ref.backend!r} model reference")
        if ref.kind == "base" or not ref.uri:
            if self._peft is not None:
                return self._peft, self._peft.disable_adapter()
            return self._base, contextlib.nullcontext()
        key = str(Path(ref.uri).resolve())
        if key not in self._adapters:
            if not (Path(key) / "adapter_config.json").is_file():
                raise FileNotFoundError(f"no peft adapter in {ref.uri}")
            name = f"adapter{len(self._adapters)}"
            meta = lora_cls.ClsMeta.load(Path(key))
            if meta is not None:
                self._cls[key] = meta
                if not hasattr(self._base, HEAD):
                    attach_head(self._base, len(meta.labels), meta.pooling, meta.document_blocks)
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(self._base, key, adapter_name=name)
            else:
                self._peft.load_adapter(key, adapter_name=name)
            self._adapters[key] = name
        self._peft.set_adapter(self._adapters[key])
        self._peft.eval()
        return self._peft, contextlib.nullcontext()

    # ------------------------------------------------------------------ contract
    def base_model(self) -> ModelRef:
        return ModelRef(backend=NAME, kind="base",
                        extra={"model": self.cfg.model.name, "source": self.source})

    def train(self, job: TrainJob) -> TrainedModel:
        name = self._method()
        if name == "none":
            return TrainedModel(model=self.base_model())
        method = methods.get(name)
        group, sent = self.group, Path(job.out_dir)
        if group.active and group.main:
            group.send("train", (job,), self.cfg.data.labels)
        elif group.active:  # a follower writes only into its own folder
            job = dataclasses.replace(job, out_dir=Path(self.ctx.run_dir) / "train")
            Path(job.out_dir).mkdir(parents=True, exist_ok=True)
        self._ensure_loaded(tuple(job.train) + tuple(job.eval), job.prompt)
        if self._peft is not None:  # a second training in this process: start from the clean base
            self._base = self._peft.unload()
            self._peft, self._adapters = None, {}
        if self.quantization != "none":
            self._base = quantization.prepare_for_training(self._base)
        session = methods.Session(self._base, self._tok, self.cfg, self.ctx, self.rt, self.pad_id, self.end_id,
                                  self.features)
        self._repeat = bool(job.repeat)
        plan, history, metrics = loop.train(method, session, job)
        model = self._peft = plan.model
        out = Path(job.out_dir)
        adapter_dir = out / "adapter"
        model.save_pretrained(adapter_dir, save_embedding_layers=False)
        plan.save(adapter_dir)
        meta = lora_cls.ClsMeta.load(adapter_dir)
        if meta is not None:
            self._cls[str(adapter_dir.resolve())] = meta
        if self.source == loading.SOURCE_TINY:
            self._tok.save_pretrained(adapter_dir)
        self._adapters[str(adapter_dir.resolve())] = "default"
        group.aliases[str(sent / "adapter")] = str(adapter_dir)
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
        ref = ModelRef(backend=NAME, kind="tuned", uri=str(adapter_dir),
                       extra={"model": self.cfg.model.name, "source": self.source})
        return TrainedModel(model=ref, history=history, metrics={**metrics, **self._load_metrics()},
                            artifacts=(str(adapter_dir),))

    def _calibration_prior(self, net, prompt, conts, bc):
        """Per-label log-probability after content-free inputs (contextual calibration), or None."""
        method = loading.enum_value(bc.calibration)
        if method == "none":
            return None
        if method != "content_free":
            raise ValueError(f"backend.calibration must be none or content_free, not {method!r}")
        free = [encoding.prompt_ids(self._tok, prompt, t) for t in inference.CONTENT_FREE]
        rows = inference.score_labels(net, free, list(prompt.labels), conts, self.pad_id, len(free),
                                      self.rt.quiet(),
                                      bc.length_normalize)
        lengths = [len(c) for c in conts]
        per = [[r["scores"][lab] / (lengths[j] if bc.length_normalize else 1)
                for j, lab in enumerate(prompt.labels)] for r in rows]
        return [sum(col) / len(col) for col in zip(*per)]

    def _score(self, net, prompts, prompt, conts, decoding, prior):
        """score_labels, keeping the frozen layers' states for a later lora_cls when it will reuse them."""
        bc = self.cfg.backend
        k = self._split_for_reuse() if self._peft is None else -1
        if k < 0:  # under fsdp no shared-prefix pass: whether there is one depends on the rank's rows
            return inference.score_labels(net, prompts, list(prompt.labels), conts, self.pad_id,
                                          decoding.batch_size, self.rt, bc.length_normalize, prior,
                                          share_prefix=not fsdp.active(self.group))
        after_batch, remove = self.features.capture(net, k, bc.adapted_tokens, prompts)
        try:
            return inference.score_labels(net, prompts, list(prompt.labels), conts, self.pad_id,
                                          decoding.batch_size, self.rt, bc.length_normalize, prior,
                                          on_cache=after_batch, share_prefix=bc.adapted_tokens > 0,
                                          keep_tokens=max(bc.adapted_tokens, 1))
        finally:
            remove()

    def follow(self) -> None:
        """A follower rank of a launched run: do this rank's share of each call rank 0 makes, until
        rank 0's run ends (:mod:`~ftlab_local_peft.distributed`)."""
        distributed.serve(self)

    def predict(self, model: ModelRef, examples: Sequence[Example], prompt: Any,
                decoding: Any) -> Predictions:
        group = self.group
        if not group.active:
            return self._predict(model, examples, prompt, decoding)
        t0 = time.perf_counter()
        if group.main:
            group.send("predict", (model, examples, prompt, decoding), self.cfg.data.labels)
        here = model
        if model.kind == "tuned" and model.uri:
            here = dataclasses.replace(model, uri=group.adapter(model.uri, Path(self.ctx.run_dir)))
        self._ensure_loaded(examples, prompt, here)  # the tiny tokenizer learns every row, as alone
        rows, real = group.shard(examples)
        part = self._predict(here, rows, prompt, decoding)
        items = group.gather(part.items[:real], len(examples))
        if items is None:
            return part
        dt = time.perf_counter() - t0
        metrics = {**part.metrics, "time/predict_s": dt, "time/predict_s_per_example": dt / max(len(examples), 1)}
        return Predictions(model=model, items=tuple(items), metrics=metrics)

    def _predict(self, model: ModelRef, examples: Sequence[Example], prompt: Any,
                 decoding: Any) -> Predictions:
        self._ensure_loaded(examples, prompt, model)
        t0 = time.perf_counter()
        net, mode_ctx = self._model_for(model)
        tok, bc = self._tok, self.cfg.backend
        sent = [encoding.sent_prompt(tok, prompt, ex.text) for ex in examples]
        prompts = [encoding.text_ids(tok, prompt, text) for text, _ in sent]
        cuts = [dict(c) if c else {} for _, c in sent]
        mode = loading.enum_value(decoding.mode)
        meta = self._cls.get(str(Path(model.uri).resolve())) if model.kind == "tuned" and model.uri else None
        if not examples:
            results = []
        elif meta is not None:  # a lora_cls adapter answers with its head, whatever the decoding mode
            if list(meta.labels) != list(prompt.labels):
                raise ValueError(f"adapter {model.uri} was trained on labels {list(meta.labels)}, "
                                 f"not this run's {list(prompt.labels)}")
            docs = None
            if meta.document_tokens > 0:
                docs = []
                for ex, c in zip(examples, cuts):
                    ids, doc_cut = encoding.document_cut(tok, encoding.document_text(prompt, ex.text),
                                                         meta.document_tokens)
                    docs.append(ids)
                    if doc_cut:
                        c["document"] = doc_cut
            with mode_ctx:
                results = lora_cls.predict(net, meta, prompts, self.pad_id, self.rt, decoding.batch_size,
                                           self.features, docs, keep=self._repeat)
        elif mode == "score_labels":
            conts = [encoding.label_ids(tok, lab, self.end_id, bc.score_end_token) for lab in prompt.labels]
            with mode_ctx:
                prior = self._calibration_prior(net, prompt, conts, bc)
                results = self._score(net, prompts, prompt, conts, decoding, prior)
        elif mode == "generate":
            with mode_ctx:
                results = inference.generate(net, tok, prompts, self.end_id, self.pad_id, decoding,
                                             self.cfg.seed, self.rt, synced=fsdp.active(self.group))
        else:
            raise ValueError(f"local_peft: unknown decoding mode {mode!r}")
        items = tuple(Prediction(id=ex.id, **r, prompt=text, truncation=c or None)
                      for ex, r, (text, _), c in zip(examples, results, sent, cuts))
        dt = time.perf_counter() - t0
        metrics = {"time/predict_s": dt, "time/predict_s_per_example": dt / max(len(examples), 1),
                   **self._load_metrics()}
        return Predictions(model=model, items=items, metrics=metrics)
