"""One run over several processes (issue 20): real gloo process groups, torchrun, Ray Train, MLflow sqlite.

The end-to-end tests run the smoke experiment as one process and as two (``ftlab launch --nproc 2``,
then Ray Train with 2 CPU workers) with the same global batch and compare what a user would: the
loss curve, the adapter weights, the evaluator's rows and the MLflow record. fp32 and
``train.lora.dropout=0``: with dropout each rank draws its own masks, so only the statistics match
(docs/distributed.md). Measured here (2 shared CPU cores): losses 5e-7 apart, adapter weights 9e-7,
label scores 2e-5; the tolerances below leave a margin of 10-50x over that float summation noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FTLAB = str(Path(sys.executable).parent / "ftlab")
COMMON = ["+experiment=smoke", "backend.dtype=float32", "backend.progress=false", "train.lora.dropout=0",
          "data.max_eval_rows=11", "eval.bootstrap_samples=50"]
"""11 eval rows: two ranks predict 6 and 5, so the gather must restore an uneven interleave."""
LOSS_RTOL, WEIGHT_ATOL, SCORE_ATOL = 1e-5, 1e-5, 1e-3


def ftlab(*args, env=None, timeout=600):
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    return subprocess.run([FTLAB, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full)


def adapter(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "train" / "adapter" / "adapter_model.safetensors"))


def losses(run_dir: Path) -> list[float]:
    return [r["train/loss"] for r in json.loads((run_dir / "train" / "history.json").read_text())
            if "train/loss" in r]


def predictions(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / "eval" / stage / "eval" / "predictions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_run(one: Path, many: Path) -> None:
    """``many`` (several processes) trained and predicted what ``one`` (one process) did."""
    assert losses(many) == pytest.approx(losses(one), rel=LOSS_RTOL)
    a, b = adapter(one), adapter(many)
    assert set(a) == set(b) and a
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= WEIGHT_ATOL, f"adapter weights differ by {worst}"
    assert max(float(v.abs().max()) for v in b.values()) > 100 * WEIGHT_ATOL  # trained: not all zero
    for stage in ("base", "tuned"):
        p, q = predictions(one, stage), predictions(many, stage)
        # the evaluator saw every eval row exactly once, in the input order
        assert [r["id"] for r in q] == [r["id"] for r in p] and len({r["id"] for r in q}) == len(q) == 11
        assert [r["label"] for r in q] == [r["label"] for r in p]
        for r, s in zip(p, q):
            assert s["scores"] == pytest.approx(r["scores"], abs=SCORE_ATOL)


def runs_in(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(exps)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("single") / "run"
    res = ftlab(*COMMON, f"hydra.run.dir={run_dir}", "tracking.enabled=false")
    assert res.returncode == 0, res.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    res = ftlab("launch", "--nproc", "2", *COMMON, f"hydra.run.dir={root / 'run'}",
                f"tracking.uri=sqlite:///{root / 'mlflow.db'}")
    assert res.returncode == 0, res.stderr[-3000:]
    return root


# ------------------------------------------------------------------ the group itself (two gloo processes)
def _group_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from ftlab_local_peft.distributed import Group

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g = Group(rank=rank, world=world, cpu=dist.group.WORLD)
    rows, real = g.shard(list(range(7)))
    assert real == len(rows)  # ddp: no padding
    got = g.gather([f"row{i}" for i in rows], 7)
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    x, weights, batch = torch.arange(15.0).view(5, 3) / 10, [1.0, 2.0, 3.0, 1.0, 0.5], [4, 0, 2, 1, 3]

    def loss(idx):
        wt = torch.tensor([weights[i] for i in idx])
        return ((x[idx] @ w) ** 2 * wt).sum() / wt.sum()

    mine, share = g.part(batch, weights)
    value = loss(mine)
    (value * share).backward()
    total, tokens = g.sum_grads([w], value.item() * share, len(mine))
    Path(out, f"{rank}.json").write_text(json.dumps({"got": got, "grad": w.grad.tolist(), "loss": total,
                                                     "tokens": tokens, "mine": mine}))
    dist.destroy_process_group()


def test_two_gloo_ranks_sum_to_the_single_process_gradient_and_gather_every_row_once(tmp_path):
    import torch
    import torch.multiprocessing as mp

    mp.spawn(_group_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["got"] == [f"row{i}" for i in range(7)] and r1["got"] is None
    assert r0["mine"] == [4, 2, 3] and r1["mine"] == [0, 1]  # rows rank::world of the batch
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    x, weights = torch.arange(15.0).view(5, 3) / 10, torch.tensor([1.0, 2.0, 3.0, 1.0, 0.5])
    whole = ((x @ w) ** 2 * weights).sum() / weights.sum()
    whole.backward()
    for r in (r0, r1):  # every rank holds the whole batch's gradient, weighted by the rows' weights
        assert r["grad"] == pytest.approx(w.grad.tolist(), rel=1e-6)
        assert r["loss"] == pytest.approx(whole.item(), rel=1e-6) and r["tokens"] == 5


# ------------------------------------------------------------------ torchrun
@pytest.mark.slow
def test_ddp_over_two_processes_matches_one_and_logs_one_mlflow_run(single, ddp):
    run_dir = ddp / "run"
    assert_same_run(single, run_dir)
    client, runs = runs_in(ddp / "mlflow.db")
    assert len(runs) == 1, [r.info.run_name for r in runs]  # rank 1 logged nothing
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["local_peft.distributed"] == "ddp, 2 ranks"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(losses(run_dir))
    assert json.loads((run_dir / "manifest.json").read_text())["backend_runtime"]["local_peft.distributed"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "model/adapter")}
    assert "model/adapter/adapter_model.safetensors" in arts
    assert not (run_dir / "train" / "checkpoint").exists()


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_from_rank_0s_checkpoint(ddp, tmp_path):
    run_dir, db = tmp_path / "run", tmp_path / "mlflow.db"
    args = [*COMMON, f"hydra.run.dir={run_dir}", f"tracking.uri=sqlite:///{db}", "backend.checkpoint_steps=2"]
    killed = ftlab("launch", "--nproc", "2", *args, env={"FTLAB_TEST_KILL_AT": "checkpoint.swap@4"})
    assert killed.returncode != 0
    assert (run_dir / "train" / "checkpoint.old" / "trainer_state.json").is_file()  # step 2's, whole
    assert not (run_dir / "train" / "adapter").exists()
    resumed = ftlab("launch", "--nproc", "2", *args, f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume: base/eval predictions read back" in resumed.stderr + resumed.stdout
    a, b = adapter(ddp / "run"), adapter(run_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= WEIGHT_ATOL
    client, runs = runs_in(db)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert client.get_metric_history(runs[0].info.run_id, "train/resumed_from_step")[-1].value == 2


# ------------------------------------------------------------------ Ray Train
@pytest.mark.slow
def test_ray_train_with_two_cpu_workers_matches_one_process_under_a_parent_run(single, tmp_path):
    pytest.importorskip("ray.train.torch")
    run_dir, db = tmp_path / "run", tmp_path / "mlflow.db"
    res = ftlab("launch", *COMMON, f"hydra.run.dir={run_dir}", f"tracking.uri=sqlite:///{db}",
                "backend.ray_train.num_workers=2", env={"RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)})
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert_same_run(single, run_dir)
    client, runs = runs_in(db)
    assert len(runs) == 2, [r.info.run_name for r in runs]
    (parent,) = [r for r in runs if r.data.tags.get("ftlab.launch") == "ray_train"]
    (child,) = [r for r in runs if r is not parent]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params["launch.num_workers"] == "2" and parent.data.params["launch.use_gpu"] == "False"
    assert parent.info.status == child.info.status == "FINISHED"
    assert child.data.tags["local_peft.distributed"] == "ddp, 2 ranks"
    arts = {a.path for a in client.list_artifacts(child.info.run_id, "model/adapter")}
    assert "model/adapter/adapter_model.safetensors" in arts


# ------------------------------------------------------------------ fsdp
def _tiny_lm(shard_on=None):
    """A tiny untied Llama (sharded with :func:`fsdp.shard_model` when ``shard_on``), then LoRA on q/v
    (inside the sharded layers) and on the LM head (outside them)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftlab_local_peft import fsdp

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    if shard_on is not None:
        lm = fsdp.shard_model(lm, shard_on)
    torch.manual_seed(1)
    model = get_peft_model(lm, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                          target_modules=["q_proj", "v_proj", "lm_head"]))
    for name, p in model.named_parameters():  # LoRA B starts at 0: give every adapter weight a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    ids = torch.randint(0, 64, (5, 7), generator=torch.Generator().manual_seed(1))
    return model, ids


BATCHES = ([0, 1, 2], [3], [4, 0])
"""Micro-batches of one step; in [3] rank 1 has no row and must still run the shards' collectives."""


def _fsdp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from ftlab_local_peft import fsdp
    from ftlab_local_peft.distributed import Group

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g = Group(rank=rank, world=world, mode="fsdp", cpu=dist.group.WORLD)
    model, ids = _tiny_lm(shard_on=torch.device("cpu"))
    base_q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    here, whole = fsdp.weight_bytes(model)
    for batch in BATCHES:
        rows, share = fsdp.lockstep(batch, *g.part(batch, None))
        (model(input_ids=ids[rows], labels=ids[rows]).loss * share).backward()
    g.sum_grads(list(params.values()), 0.0, 0)
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), 0.05)
    with torch.no_grad():  # a forward after training, as prediction runs it
        logits = model(input_ids=ids[rank::world]).logits
    shards, _ = fsdp.even_shard(list(range(5)), rank, world)
    Path(out, f"{rank}.json").write_text(json.dumps({
        "sharded": [fsdp.is_sharded(base_q), base_q.to_local().shape[0], any(map(fsdp.is_sharded, params.values()))],
        "bytes": [here, whole], "norm": float(norm), "grads": {n: p.grad.tolist() for n, p in params.items()},
        "logits": logits.tolist(), "shards": shards}))
    dist.destroy_process_group()


def test_fsdp_shards_the_base_and_trains_lora_like_one_process_with_an_idle_rank(tmp_path):
    import torch
    import torch.multiprocessing as mp

    mp.spawn(_fsdp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    model, ids = _tiny_lm()
    for batch in BATCHES:
        model(input_ids=ids[batch], labels=ids[batch]).loss.backward()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), 0.05)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    for r, g in enumerate(got):
        # a layer weight is a DTensor holding half the rows; the LoRA weights are whole on every rank
        assert g["sharded"] == [True, 16, False]
        assert g["bytes"][0] < 0.75 * g["bytes"][1]  # the layers' half went elsewhere (embeddings stay whole)
        assert g["norm"] == pytest.approx(float(norm), rel=1e-5) and float(norm) > 0.05  # it clipped
        assert set(g["grads"]) == set(params)
        for n, p in params.items():
            assert torch.tensor(g["grads"][n]) == pytest.approx(p.grad, abs=1e-6), n
        assert torch.tensor(g["logits"]) == pytest.approx(logits[r::2], abs=1e-5)
    # prediction: as many rows on each rank, a repeated row padding the short one
    assert got[0]["shards"] == [0, 2, 4] and got[1]["shards"] == [1, 3, 3]


def _tied_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))


def _load_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from ftlab_local_peft import fsdp
    from ftlab_local_peft.distributed import Group

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g, calls = Group(rank=rank, world=world, mode="fsdp", cpu=dist.group.WORLD), []
    model = fsdp.load_sharded(lambda: calls.append(rank) or _tied_llama(), g, torch.device("cpu"))
    ids = torch.randint(0, 64, (3, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    Path(out, f"{rank}.json").write_text(json.dumps({
        "calls": calls, "tied": model.lm_head.weight is model.model.embed_tokens.weight,
        "meta": any(p.is_meta for p in model.parameters()), "logits": logits.tolist(),
        "inv_freq": model.model.rotary_emb.inv_freq.tolist()}))
    dist.destroy_process_group()


def test_fsdp_reads_the_base_once_and_broadcasts_it_into_the_shards(tmp_path):
    import torch
    import torch.multiprocessing as mp

    mp.spawn(_load_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ref = _tied_llama()
    ids = torch.randint(0, 64, (3, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref(input_ids=ids).logits
    for r in (0, 1):
        got = json.loads((tmp_path / f"{r}.json").read_text())
        assert got["calls"] == ([0] if r == 0 else [])  # only rank 0 read the weights
        assert got["tied"] and not got["meta"]  # the follower's meta model got storage, tied again
        assert torch.tensor(got["inv_freq"]) == pytest.approx(ref.model.rotary_emb.inv_freq, abs=0)
        assert torch.tensor(got["logits"]) == pytest.approx(want, abs=1e-5)


@pytest.mark.slow
def test_a_killed_fsdp_run_resumes_from_its_checkpoint_and_matches_one_process(single, tmp_path):
    run_dir, db = tmp_path / "run", tmp_path / "mlflow.db"
    args = [*COMMON, "backend.distributed=fsdp", f"hydra.run.dir={run_dir}", f"tracking.uri=sqlite:///{db}",
            "backend.checkpoint_steps=2"]
    killed = ftlab("launch", "--nproc", "2", *args, env={"FTLAB_TEST_KILL_AT": "checkpoint.swap@4"})
    assert killed.returncode != 0
    resumed = ftlab("launch", "--nproc", "2", *args, f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(single, run_dir)
    client, runs = runs_in(db)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    tags = runs[0].data.tags
    assert tags["local_peft.distributed"] == "fsdp, 2 ranks"
    assert float(tags["local_peft.fsdp_rank0_weights_gib"]) < 0.75 * float(tags["local_peft.fsdp_whole_weights_gib"])
    assert client.get_metric_history(runs[0].info.run_id, "train/resumed_from_step")[-1].value == 2


def test_fsdp_refuses_what_it_cannot_shard_by_key():
    from local_peft_helpers import make_cfg

    from ftlab_local_peft import fsdp

    fsdp.refuse(make_cfg())  # lora, no quantization: supported
    fsdp.refuse(make_cfg(train={"method": "none"}))
    with pytest.raises(ValueError, match=r"fsdp does not support train.method=lora_cls"):
        fsdp.refuse(make_cfg(train={"method": "lora_cls"}))
    with pytest.raises(ValueError, match=r"train.quantization=4bit"):
        fsdp.refuse(make_cfg(train={"quantization": "4bit"}))


def test_unknown_modes_are_refused_by_key(monkeypatch):
    from local_peft_helpers import make_cfg

    from ftlab_local_peft import distributed

    with pytest.raises(Exception, match="backend.distributed must be ddp or fsdp, not 'dpp'"):
        make_cfg(backend={"distributed": "dpp"})
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: nothing to join, fsdp or not
    assert not distributed.setup(make_cfg(backend={"distributed": "fsdp"}).backend).active
