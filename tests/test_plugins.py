"""The plugin manager, every hook (test_hook_<name>), and the registration rules."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftlab import hookimpl, hookspecs
from ftlab.config import BackendConfig
from ftlab.plugins import PluginError, Plugins

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [n for n in dir(hookspecs) if n.startswith("ftlab_")]


@dataclass
class EchoConfig(BackendConfig):
    name: str = "echo"
    """Backend name."""


class Recorder:
    def __init__(self):
        self.calls = []
        self.summaries = []
        self.hooks: list[str] = []
        """Every hook of this plugin that was called, in order."""

    @hookimpl
    def ftlab_register_backends(self, register):
        self.hooks.append("ftlab_register_backends")
        register("echo", lambda cfg, ctx: ("echo", cfg), EchoConfig)

    @hookimpl
    def ftlab_register_configs(self, store):
        self.hooks.append("ftlab_register_configs")
        store("model", "echo_model", {"name": "echo_model", "source": "tiny_random"})

    @hookimpl
    def ftlab_register_tasks(self, register):
        from ftlab.tasks import TaskType

        self.hooks.append("ftlab_register_tasks")
        register(TaskType("echo_task", True, ("echo_metric",), ("echo_len",)))

    @hookimpl
    def ftlab_register_metrics(self, register):
        from ftlab.metrics.text import TextMetric

        self.hooks.append("ftlab_register_metrics")
        register(TextMetric("echo_metric", ("echo_len",), stats=lambda p, refs: {"echo_len": [len(p), 1.0]},
                            value=lambda key, st: st[0] / st[1], example=lambda p, refs: {"echo_len": len(p)}))

    @hookimpl
    def ftlab_run_started(self, cfg, run_dir):
        self.hooks.append("ftlab_run_started")
        self.calls.append(("started", cfg.experiment, run_dir))

    @hookimpl
    def ftlab_run_finished(self, summary):  # fewer arguments than the spec: allowed
        self.hooks.append("ftlab_run_finished")
        self.calls.append(("finished", summary["status"]))
        self.summaries.append(summary)


@pytest.fixture
def pm():
    m = Plugins(load_entry_points=False)
    rec = Recorder()
    m.register(rec, name="recorder")
    yield m, rec
    m.unregister("recorder")


def test_hook_ftlab_register_backends(pm):
    m, _ = pm
    info = m.backend("echo")
    assert info.schema is EchoConfig and info.plugin == "recorder"
    assert info.factory(1, 2) == ("echo", 1)


def test_hook_ftlab_register_configs(pm):
    m, _ = pm
    stored = []
    m.register_configs(lambda group, name, node: stored.append((group, name)))
    assert ("model", "echo_model") in stored


def test_hook_ftlab_register_tasks(pm):
    m, _ = pm
    assert m.task("echo_task").metrics == ("echo_metric",)
    assert {"classification", "text_generation", "summarization", "question_answering"} <= set(m.tasks())
    with pytest.raises(PluginError, match="unknown eval.task 'sumarization'; did you mean 'summarization'"):
        m.task("sumarization")


def test_hook_ftlab_register_metrics(pm):
    m, _ = pm
    echo = m.metric("echo_metric")
    assert echo.value("echo_len", [6.0, 2.0]) == 3.0 and echo.example("abc", ["x"]) == {"echo_len": 3}
    assert {"rouge", "bleu", "chrf", "bleu4", "exact_match", "token_f1"} <= set(m.metrics())
    with pytest.raises(PluginError, match="unknown metric 'rogue' in eval.metrics; did you mean 'rouge'"):
        m.metric("rogue")


def test_a_task_registered_twice_names_both_plugins(pm):
    m, _ = pm

    class Twin:
        @hookimpl
        def ftlab_register_tasks(self, register):
            from ftlab.tasks import TaskType

            register(TaskType("echo_task", True))

    m.register(Twin(), name="twin")
    with pytest.raises(PluginError, match="task 'echo_task' registered twice: by 'recorder' and 'twin'|"
                                          "task 'echo_task' registered twice: by 'twin' and 'recorder'"):
        m.tasks()
    m.unregister("twin")


def test_hook_ftlab_run_started(fake_backend, tmp_path):
    rec = Recorder()
    fake_backend.register(rec, name="recorder")
    try:
        from ftlab.config.compose import compose
        from ftlab.runner import run

        run(compose(["+experiment=smoke", "backend=fake", "stages=[evaluate_base]"], fake_backend),
            run_dir=tmp_path / "r", plugins=fake_backend)
    finally:
        fake_backend.unregister("recorder")
    assert rec.calls[0] == ("started", "smoke", tmp_path / "r")


def test_hook_ftlab_run_finished(fake_backend, tmp_path):
    rec = Recorder()
    fake_backend.register(rec, name="recorder")
    try:
        from ftlab.config.compose import compose
        from ftlab.runner import run

        with pytest.raises(RuntimeError):
            run(compose(["+experiment=smoke", "backend=fake", "backend.fail_predict=true"],
                        fake_backend), run_dir=tmp_path / "r", plugins=fake_backend)
    finally:
        fake_backend.unregister("recorder")
    assert rec.calls[-1] == ("finished", "FAILED")


def test_run_finished_summary_carries_the_headline(fake_backend, tmp_path):
    """A backend that reports no runtime tags (the fake) still gets the headline in the summary."""
    rec = Recorder()
    fake_backend.register(rec, name="recorder")
    try:
        from ftlab.config.compose import compose
        from ftlab.runner import run

        f1 = run(compose(["+experiment=smoke", "backend=fake", "stages=[evaluate_base]"], fake_backend),
                 run_dir=tmp_path / "r", plugins=fake_backend)
    finally:
        fake_backend.unregister("recorder")
    assert rec.calls[-1] == ("finished", "FINISHED")
    assert rec.summaries[-1]["base_macro_f1"] == f1


def test_every_hook_has_a_test_and_docs():
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    for name in HOOKS:
        test = globals().get(f"test_hook_{name}")
        assert inspect.isfunction(test) and test.__module__ == __name__, f"no test_hook_{name} here"
        assert hasattr(getattr(Recorder, name, None), "ftlab_impl"), f"Recorder does not implement {name}"
        sig = f"{name}{inspect.signature(getattr(hookspecs, name))}"
        assert f"## `{sig}`" in docs, f"docs/plugin_hooks.md lacks the exact signature {sig}"
        assert getattr(hookspecs, name).__doc__


def test_the_facade_calls_every_hook(fake_backend, tmp_path):
    """Each hook reaches the Recorder's implementation through the facade during one real run."""
    from ftlab.config.compose import compose
    from ftlab.runner import run

    rec = Recorder()
    fake_backend.register(rec, name="recorder")  # drops the cached registrations: they run again
    try:
        cfg = compose(["+experiment=smoke", "backend=fake", "stages=[evaluate_base]"], fake_backend)
        run(cfg, run_dir=tmp_path / "r", plugins=fake_backend)
    finally:
        fake_backend.unregister("recorder")
    assert set(rec.hooks) == set(HOOKS), f"never called: {sorted(set(HOOKS) - set(rec.hooks))}"
    assert [c[0] for c in rec.calls] == ["started", "finished"]


def test_unknown_backend_suggests(pm):
    m, _ = pm
    with pytest.raises(PluginError, match=r"unknown backend 'ecko'; did you mean 'echo'\?"):
        m.backend("ecko")


def test_duplicate_backend_name_is_an_error(pm):
    m, _ = pm

    class Dup:
        @hookimpl
        def ftlab_register_backends(self, register):
            register("echo", lambda c, x: None, EchoConfig)

    m.register(Dup(), name="dup")
    with pytest.raises(PluginError, match="registered twice"):
        m.backends()
    m.unregister("dup")
    assert "echo" in m.backends()


def test_impl_without_spec_is_rejected():
    class Bad:
        @hookimpl
        def ftlab_no_such_hook(self):
            pass

    m = Plugins(load_entry_points=False)
    m.register(Bad(), name="bad")
    with pytest.raises(Exception, match="unknown hook"):
        m.pm.check_pending()


def test_entry_points_and_disable(monkeypatch):
    m = Plugins(load_entry_points=True)
    assert "local_peft" in m.backends()
    row = next(r for r in m.plugin_table() if r[0] == "local_peft")
    assert row[2] == "ftlab-local-peft" and re.match(r"\d", row[3])
    monkeypatch.setenv("FTLAB_DISABLE_PLUGINS", "local_peft")
    assert "local_peft" not in Plugins(load_entry_points=True).backends()
    monkeypatch.delenv("FTLAB_DISABLE_PLUGINS")
    monkeypatch.setenv("FTLAB_LOAD_PLUGINS", "nothing_else")
    assert "local_peft" not in Plugins(load_entry_points=True).backends()
