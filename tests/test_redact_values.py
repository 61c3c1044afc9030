"""Secrets are redacted by what they look like, not only by the key that holds them."""

from __future__ import annotations

import json

import pytest

from conftest import mlflow_client

GITHUB = "ghp_" + "Zx9" * 12
AWS = "AKIA" + "QX7Z" * 4
GCP_KEY = "AIza" + "SyB4-x_" * 5  # 35 characters after the prefix
HF = "hf_" + "aBcD" * 9
BEARER = "eyJhbGciOi.abcdefghijklmnop_bearer"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
SERVICE_ACCOUNT = json.dumps({
    "type": "service_account", "project_id": "demo", "private_key_id": "4f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
    "private_key": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n",
    "client_email": "sa@demo.iam.gserviceaccount.com"})
SECRETS = (GITHUB, AWS, GCP_KEY, HF, BEARER, PEM_BODY, "4f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
           "s3cr3t-pass")


@pytest.mark.parametrize("text,shown", [
    (f"token {GITHUB} end", "token *** end"),
    (f"key={AWS}", "key=***"),
    (f"maps {GCP_KEY}", "maps ***"),
    (f"login {HF}", "login ***"),
    ("github_pat_" + "A1b2" * 10, "***"),
    ("xoxb-1234567890-abcdefghij", "***"),
    ("sk-proj-" + "q" * 30, "***"),
    ("sk_live_" + "4" * 24, "***"),
    ("glpat-" + "x" * 20, "***"),
    ("ya29." + "a0Af" * 8, "***"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM", "***"),
    (f"Authorization: Bearer {BEARER}", "Authorization: Bearer ***"),
    (f"curl -H 'authorization: token {GITHUB[4:]}'", "curl -H 'authorization: token ***'"),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy+/==;EndpointSuffix=x",
     "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=x"),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----", "***"),
    (f"cut short: -----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}", "cut short: ***"),
    ('{"client_secret": "abc", "user": "bob"}', '{"client_secret": "***", "user": "bob"}'),
    ("postgresql://bob:s3cr3t-pass@db:5432/optuna", "postgresql://***@db:5432/optuna"),
    # not credentials: hashes, ids, ordinary words
    ("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("run 0123456789abcdef0123456789abcdef, Basic usage, max_new_tokens=16",
     "run 0123456789abcdef0123456789abcdef, Basic usage, max_new_tokens=16"),
    ("Bearer of bad news", "Bearer of bad news"),
])
def test_credential_formats_are_masked_wherever_they_appear(text, shown):
    from ftlab.tracking.redact import redact_text

    assert redact_text(text) == shown


def test_a_service_account_json_under_an_innocent_key_loses_its_key():
    from ftlab.tracking.redact import redact_value

    shown = json.loads(redact_value("backend.options", SERVICE_ACCOUNT))
    assert shown["private_key"] == "***" and shown["private_key_id"] == "***"
    assert shown["client_email"] == "sa@demo.iam.gserviceaccount.com"


def test_credentials_under_innocent_keys_never_reach_mlflow_or_the_run_folder(run_experiment):
    """A run whose innocent-looking settings and tags carry credentials records none of them."""
    from ftlab.tracking.mlflow_tracker import Tracker

    _, run_dir = run_experiment(f"tracking.run_name=nightly-{GITHUB}", f"data.name=mt-{AWS}",
                                f"prompt.name='Bearer {BEARER}'")
    client = mlflow_client()
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    tracker = Tracker(run_dir, True, None, "smoke", None)
    tracker._client, tracker.run_id = client, run.info.run_id
    tracker.set_tags({"note": f"key {GCP_KEY}", "login": HF, "sa": SERVICE_ACCOUNT})
    tracker.log_params({"extra.blob": SERVICE_ACCOUNT})
    tracker.end("FAILED", error=f"upload failed (password=s3cr3t-pass) for "
                                f"https://bob:s3cr3t-pass@storage.example.com and {GITHUB}")
    run = client.get_run(run.info.run_id)
    texts = {"run name": run.info.run_name, "params": json.dumps(run.data.params),
             "tags": json.dumps(run.data.tags)}
    texts.update({str(p): p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()})
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert run.data.params["data.name"] == "mt-***" and run.info.run_name == "nightly-***"
    assert run.data.tags["note"] == "key ***"
