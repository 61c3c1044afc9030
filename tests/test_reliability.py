"""What a run records about itself and what it survives: skipped data, secrets, crash-safe files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pytest
from fake_backend import FakeConfig

from conftest import ROOT
from test_runner import _only_run


def test_skipped_rows_are_counted_logged_and_kept_as_an_artifact(run_experiment, tmp_path, caplog):
    lines = (ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:24]
    bad = lines[:3] + ['{"input_text": 12, "output_text": "Surgery"}', "{oops"] + lines[3:]
    path = tmp_path / "eval_bad.jsonl"
    path.write_text("\n".join(bad) + "\n")
    with caplog.at_level("WARNING", logger="ftlab"):
        _, run_dir = run_experiment(f"data.eval_path={path}", "data.on_error=skip")
    client, run = _only_run()
    m = run.data.metrics
    assert m["data/eval/skipped_rows"] == 2
    assert m["data/eval/skipped/wrong_type"] == 1 and m["data/eval/skipped/invalid_json"] == 1
    assert run.data.params["data.on_error"] == "skip"
    rows = [json.loads(x) for x in (run_dir / "data/skipped_rows.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rows] == [(4, "wrong_type"), (5, "invalid_json")]
    assert rows[0]["message"] == "'input_text' must be a string, got int"
    assert "data/skipped_rows.jsonl" in {a.path for a in client.list_artifacts(run.info.run_id, "data")}
    assert any("left out 2 bad rows" in r.getMessage() for r in caplog.records)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["data"]["eval"]["rows"] == 24  # the 24 good rows; limits count kept rows


def test_bad_rows_fail_the_run_by_default(run_experiment, tmp_path):
    from ftlab.data import DataError

    path = tmp_path / "eval_bad.jsonl"
    path.write_text("{oops\n")
    with pytest.raises(DataError, match=r"eval_bad.jsonl:1: not valid JSON"):
        run_experiment(f"data.eval_path={path}")


# -- secrets ---------------------------------------------------------------------------------------

PASSWORD, TOKEN, QTOKEN = "pw-Zq81xLk", "tok-Ab12Cd34", "qk-98ZZyy"
CREDS_PATH = "/srv/private/sa-key-7781.json"


@pytest.fixture
def mlflow_server(tmp_path):
    from mlflow_server import MlflowServer

    server = MlflowServer(tmp_path / "server_store")
    yield server
    server.kill()


@dataclass
class SecretConfig(FakeConfig):
    """The fake backend plus credentials."""

    name: str = "fake_secret"
    """Backend name."""
    credentials_file: Optional[str] = None
    """A credentials file."""
    api_token: Optional[str] = None
    """A token."""
    endpoint: Optional[str] = None
    """A URI that may carry credentials."""
    max_new_tokens: int = 7
    """Not a secret, although it says tokens."""


@pytest.fixture
def secret_backend(fake_backend):
    """The fake backend with credential-like options (like bqml's credentials_file)."""
    from fake_backend import FakeBackend

    from ftlab import hookimpl

    class SecretPlugin:
        @hookimpl
        def ftlab_register_backends(self, register):
            register("fake_secret", lambda cfg, ctx: FakeBackend(cfg, ctx), SecretConfig)

    name = fake_backend.register(SecretPlugin(), name="secret_plugin")
    yield fake_backend
    fake_backend.unregister(name)


def test_secrets_never_reach_mlflow_the_run_folder_or_reports(secret_backend, mlflow_server,
                                                               tmp_path, monkeypatch):
    import platform

    from mlflow.tracking import MlflowClient

    from ftlab.config.compose import compose
    from ftlab.report import build_report
    from ftlab.runner import run

    mlflow_server.start()
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{mlflow_server.port}"
    monkeypatch.setattr("sys.argv", ["ftlab", "+experiment=smoke", f"tracking.uri={uri}",
                                     f"backend.api_token={TOKEN}"])
    cfg = compose(["+experiment=smoke", "backend=fake_secret", f"tracking.uri='{uri}'",
                   f"backend.credentials_file={CREDS_PATH}", f"backend.api_token={TOKEN}",
                   f"backend.endpoint='https://bob:{PASSWORD}@api.example.com/v1?api_key={QTOKEN}&region=eu'"],
                  secret_backend)
    run_dir = tmp_path / "run"
    run(cfg, run_dir=run_dir, plugins=secret_backend)

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.get_experiment_by_name("smoke")
    (recorded,) = client.search_runs([exp.experiment_id])
    assert recorded.info.status == "FINISHED"
    params, tags = recorded.data.params, recorded.data.tags
    assert params["backend.credentials_file"] == "***" and params["backend.api_token"] == "***"
    assert params["tracking.uri"] == f"http://***@127.0.0.1:{mlflow_server.port}"
    assert params["backend.endpoint"] == "https://***@api.example.com/v1?api_key=***&region=eu"
    assert params["backend.max_new_tokens"] == "7"

    texts = {"params": json.dumps(params), "tags": json.dumps(tags),
             "run name": recorded.info.run_name or ""}
    dl = tmp_path / "downloaded"
    client.download_artifacts(recorded.info.run_id, "", str(dl))
    files = [p for p in dl.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.name == "manifest.json" for p in files)
    files += [p for p in run_dir.rglob("*") if p.is_file()]
    html, md = build_report(recorded.info.run_id, tmp_path / "report", uri=mlflow_server.url)
    files += [html, md]
    for p in files:
        texts[str(p)] = p.read_bytes().decode("utf-8", errors="replace")
    for where, text in texts.items():
        for secret in (PASSWORD, TOKEN, QTOKEN, CREDS_PATH, "sa-key-7781"):
            assert secret not in text, f"{secret!r} leaked into {where}"
    node = platform.node()
    man = json.loads((run_dir / "manifest.json").read_text())
    assert "node" not in man["platform"]
    assert f"backend.api_token=***" in man["command"]
    for where in ("params", "tags"):
        assert f'"{node}"' not in texts[where]
    assert node not in json.dumps(man["platform"])
    recorded_uri = json.loads((run_dir / "mlflow_run.json").read_text())["tracking_uri"]
    assert recorded_uri == f"http://***@127.0.0.1:{mlflow_server.port}"


@pytest.mark.parametrize("key,value,shown", [
    ("tracking.uri", "http://u:p@h:5000/x?token=abc&a=1", "http://***@h:5000/x?token=***&a=1"),
    ("tracking.uri", "sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("backend.credentials_file", "/k.json", "***"),
    ("backend.credentials_file", None, None),
    ("backend.service_account_key_file", "/k.json", "***"),
    ("backend.db_password", "x", "***"),
    ("backend.access_token", "x", "***"),
    ("backend.hf_token", "hf_abc", "***"),
    ("backend.github_token", "ghp_x", "***"),
    ("backend.token", "t", "***"),
    ("backend.end_token", "<|im_end|>", "<|im_end|>"),
    ("backend.score_end_token", True, True),
    ("backend.pad_token_id", 0, 0),
    ("eval.decoding.max_new_tokens", 8, 8),
    ("prompt.max_input_tokens", 48, 48),
    ("backend.endpoint", "see https://a.b/c?sig=xyz&v=1 now", "see https://a.b/c?sig=***&v=1 now"),
])
def test_redaction_rules(key, value, shown):
    from ftlab.tracking.redact import redact_value

    assert redact_value(key, value) == shown


def test_error_text_and_command_lines_are_redacted():
    from ftlab.tracking.redact import redact_argv, redact_text

    err = "ConnectionError: HTTPConnectionPool(host='h', port=1): http://me:pw@h:1/api?api_key=k1"
    assert redact_text(err).endswith("http://***@h:1/api?api_key=***")
    assert redact_argv(["ftlab", "backend.credentials_file=/a/b.json", "+backend.api_token=t",
                        "tracking.uri=http://u:p@h"]) == [
        "ftlab", "backend.credentials_file=***", "+backend.api_token=***", "tracking.uri=http://***@h"]


# -- crash-safe files ------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from ftlab.paths import atomic_open, atomic_write_text

    path = tmp_path / "state.json"
    atomic_write_text(path, '{"old": 1}')
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write('{"new": ')
            raise RuntimeError("crash in the middle")
    assert path.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left behind
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_sigkill_during_a_write_leaves_the_previous_file_whole(tmp_path):
    """A real crash: the writer process is SIGKILLed half-way through a 4 MB write."""
    import subprocess
    import sys

    path = tmp_path / "predictions.jsonl"
    old = "".join(json.dumps({"id": i}) + "\n" for i in range(1000))
    path.write_text(old)
    code = (f"import os, signal\nfrom ftlab.paths import atomic_open\n"
            f"with atomic_open({str(path)!r}) as fh:\n"
            f"    fh.write('x' * 2_000_000); fh.flush()\n"
            f"    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert path.read_text() == old
    leftovers = [p for p in tmp_path.iterdir() if p.name != "predictions.jsonl"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".predictions.jsonl.")


def test_no_module_writes_a_file_in_place():
    """Every file a later command reads goes through ftlab.paths.atomic_* (appends are journals)."""
    import re

    src = ROOT / "src" / "ftlab"
    pattern = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*[\"']w")
    allowed = {"paths.py", "ui_cmd.py"}  # the helper itself; a server's live log file
    offenders = [f"{p.relative_to(src)}:{n}" for p in src.rglob("*.py") if p.name not in allowed
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "no config.yaml or manifest.json"),
    (lambda d: (d.mkdir(), (d / "config.yaml").write_text("a: 1")), "no manifest.json"),
])
def test_resume_refuses_a_folder_that_is_not_a_run_folder(run_experiment, tmp_path, setup, message):
    from ftlab.runner import StageError

    folder = tmp_path / "elsewhere"
    setup(folder)
    with pytest.raises(StageError, match=f"resume={folder}: not an ftlab run folder \\({message}\\)"):
        run_experiment(f"resume={folder}")


def test_resume_refuses_a_state_file_that_is_not_json(run_experiment, fake_backend):
    from ftlab.config.compose import compose
    from ftlab.runner import StageError, run

    _, run_dir = run_experiment("stages=[evaluate_base]")
    (run_dir / "state.json").write_text('{"evaluated": [')
    cfg = compose(["+experiment=smoke", "backend=fake", "stages=[evaluate_base]", f"resume={run_dir}"],
                  fake_backend)
    with pytest.raises(StageError, match="state.json is not valid JSON"):
        run(cfg, plugins=fake_backend)


def test_override_lists_in_free_text_are_masked():
    """A sweep logs its overrides as one string; a secret among them must not survive."""
    from ftlab.tracking.redact import redact_text

    text = "train.lora.r=8 backend.api_token=abc123 +backend.credentials_file=/k.json seed=1"
    assert redact_text(text) == ("train.lora.r=8 backend.api_token=*** +backend.credentials_file=*** "
                                 "seed=1")
    assert redact_text("http://h/x?a=1&token=t") == "http://h/x?a=1&token=***"


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from fake_backend import FakeBackend, FakePlugin

def predict(self, model, examples, prompt, decoding, _orig=FakeBackend.predict):
    if model.kind == "tuned":  # the process dies in the middle of the tuned evaluation
        os.kill(os.getpid(), signal.SIGKILL)
    return _orig(self, model, examples, prompt, decoding)

FakeBackend.predict = predict
from ftlab.config.compose import compose
from ftlab.plugins import Plugins, set_plugins
from ftlab.runner import run

pm = Plugins(load_entry_points=True)
set_plugins(pm)
pm.register(FakePlugin(), name="fake_backend_plugin")
run(compose(["+experiment=smoke", "backend=fake", *{extra!r}], pm), run_dir=Path({run_dir!r}), plugins=pm)
"""
"""A run SIGKILLed in the middle of its tuned evaluation (``extra``: more overrides)."""


def test_sigkill_during_evaluation_then_resume_gives_the_same_numbers(run_experiment, fake_backend,
                                                                      tmp_path):
    import subprocess
    import sys

    from ftlab.config.compose import compose
    from ftlab.runner import run

    killed = tmp_path / "killed"
    code = KILLED_RUN.format(tests=str(ROOT / "tests"), run_dir=str(killed), extra=[])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    state = json.loads((killed / "state.json").read_text())
    assert state["evaluated"] == ["base/eval"] and "trained" in state
    assert not (killed / "eval/tuned").exists()
    run(compose(["+experiment=smoke", "backend=fake", f"resume={killed}"], fake_backend),
        plugins=fake_backend)
    _, whole = run_experiment()  # the same config, never interrupted
    for f in ("eval/base/eval/predictions.jsonl", "eval/tuned/eval/predictions.jsonl",
              "eval/tuned/eval/metrics.json", "compare/eval/per_class_delta.csv"):
        assert (killed / f).read_text() == (whole / f).read_text(), f
    assert (json.loads((killed / "compare/eval/comparison.json").read_text())
            == json.loads((whole / "compare/eval/comparison.json").read_text()))
