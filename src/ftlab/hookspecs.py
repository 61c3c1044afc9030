"""Every ftlab hook. A plugin implements some of them with ``@ftlab.hookimpl``.

Hooks grow only by adding arguments; an implementation may take fewer arguments than its spec
(pluggy's opt-in arguments), so existing plugins keep working.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("ftlab")


@hookspec
def ftlab_register_backends(register):
    """Offer backends: call ``register(name, factory, schema, capabilities=None, distributions=())`` once for each.

    :param register: takes a backend name (``[a-z0-9_]+``), a factory ``factory(cfg, ctx)``
        returning an object that satisfies :class:`ftlab.contract.Backend`, the backend's
        config dataclass (a subclass of :class:`ftlab.config.BackendConfig` whose ``name``
        defaults to the backend name) and, optionally, an :class:`ftlab.contract.Capabilities`
        (decoding modes, training methods, documented fallbacks, native evaluation) that the host
        checks every config against; without it nothing is checked. ``distributions`` names the
        packages whose versions a run on this backend records in its manifest (the backend's own
        package always is). The schema is stored as config option ``backend/<name>``.
    Called once when the plugin manager starts, before any config is composed.
    """


@hookspec
def ftlab_register_configs(store):
    """Add config options (e.g. ``model/<name>``) to Hydra's ConfigStore.

    :param store: ``store(group, name, node)``; ``node`` is a dataclass (class or instance) or a dict.
        Group ``model_source`` registers a model source: ``name`` is the ``model.source`` value and
        ``node`` its schema, a subclass of :class:`ftlab.config.ModelConfig` with the source's keys.
    Called once at startup, after ``ftlab_register_backends``.
    """


@hookspec
def ftlab_register_tasks(register):
    """Offer task types (what a row's target is and which metrics score it): call ``register(task)``.

    :param register: takes an :class:`ftlab.tasks.TaskType` (name ``[a-z0-9_]+``, the value of
        ``eval.task``). ftlab's own four (classification, text_generation, summarization,
        question_answering) are registered this way by its default plugin.
    Called once at startup; a name registered twice is an error naming both plugins.
    """


@hookspec
def ftlab_register_metrics(register):
    """Offer metrics of generated text: call ``register(metric)`` once for each.

    :param register: takes an :class:`ftlab.metrics.text.TextMetric`: its name (what ``eval.metrics``
        and a task's ``metrics`` list), the keys it reports, per-example statistics and their corpus
        value (summable, so the paired bootstrap resamples rows), a per-example score and a signature.
    Called once at startup; the built-in ROUGE, BLEU, chrF, bleu4, exact match and token F1 come the same way.
    """


@hookspec
def ftlab_run_started(cfg, run_dir):
    """A run has started and its output folder exists.

    :param cfg: the validated run config (``ftlab.config.RunConfig``).
    :param run_dir: ``pathlib.Path`` of the run's output folder.
    """


@hookspec
def ftlab_run_finished(cfg, run_dir, summary):
    """A run has ended (successfully or not).

    :param cfg: the validated run config.
    :param run_dir: the run's output folder.
    :param summary: ``dict`` of the headline metrics (empty on failure) plus ``status``
        (``FINISHED``, ``FAILED``, ``KILLED``, or ``PRUNED`` when a search stopped it early) and
        ``error`` (the message, when failed).
    """
