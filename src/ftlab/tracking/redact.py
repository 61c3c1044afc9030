"""Keep secrets out of everything a run records (MLflow params, tags, artifacts, reports).

Two rules, applied wherever a config value or free text leaves the process:

- **Secret keys**: a config key whose last part names a credential (``credentials_file``,
  ``api_token``, ``password``, ``key_file``, ``secret`` …) is recorded as ``***`` when set.
  ``token`` counts as a whole word (``hf_token``, ``api_token``), except the tokenizer's special
  tokens (``end_token``, ``pad_token``, ``score_end_token`` …); ``max_new_tokens`` is plural, so
  not a secret either. Numbers and booleans are never masked.
- **URIs**: ``scheme://user:pass@host/…`` is recorded as ``scheme://***@host/…`` and token-like
  query parameters (``?token=…``, ``&sig=…``, ``api_key=…``) as ``***``, wherever the URI appears
  (``tracking.uri``, an endpoint, an error message, the command line).

- **Values that look like credentials**, under any key and inside any text: private-key blocks
  (PEM, also JSON-escaped as in a GCP service-account file, whose ``private_key_id`` goes too),
  ``Bearer``/``Authorization`` header values, ``"secret_key": "value"`` pairs inside JSON text, and
  the fixed formats of common cloud and hosting tokens (:data:`TOKEN_FORMATS`: AWS access key ids,
  Google API keys and OAuth tokens, GitHub, GitLab, Slack, Hugging Face, OpenAI/Anthropic, Stripe,
  npm and PyPI tokens, JWTs, Azure account keys). A tag or param named ``note`` holding
  ``ghp_…`` is recorded as ``***``.

The machine's host name is not recorded at all (see :mod:`ftlab.manifest`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"
SECRET_KEY = re.compile(r"credential|password|passwd|secret|key_?file|api_?key|private_?key"
                        r"|(^|_)token($|_)|(^|_)auth($|_)|(^|_)bearer($|_)", re.I)
_VOCAB_TOKEN = re.compile(r"(^|_)(pad|eos|bos|sos|unk|sep|cls|mask|end|start|stop|special)_token(_id)?$",
                          re.I)
_TOKEN_PARAM = re.compile(r"token|key|sig|secret|password|passwd|auth|credential|code", re.I)
_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_ASSIGN = re.compile(r"(?<![\w.])([+~]?[A-Za-z_][\w.]*)=([^\s'\",&]+)")
_UNSET = (None, "", "None", "null")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY"
                  r"(?: BLOCK)?-----|$)", re.S)
_AUTH = re.compile(r"(?i)\b(bearer|authorization:\s*(?:basic|token|bearer)?)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_JSON_PAIR = re.compile(r'"([A-Za-z_][\w.-]*)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
TOKEN_FORMATS = {
    "AWS access key id": r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}",
    "Google OAuth token": r"\bya29\.[0-9A-Za-z_-]{20,}",
    "GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    "GitLab token": r"\bglpat-[A-Za-z0-9_-]{20,}",
    "Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{30,}",
    "OpenAI/Anthropic key": r"\bsk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,}",
    "Stripe key": r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
    "npm token": r"\bnpm_[A-Za-z0-9]{36}\b",
    "PyPI token": r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{20,}",
    "JWT": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "Azure account key": r"(?<=AccountKey=)[^;\s'\"]+",
}
"""Credential formats masked by value wherever they appear (prefixes as their issuers document them)."""
_TOKENS = re.compile("|".join(f"(?:{p})" for p in TOKEN_FORMATS.values()))


def is_secret_key(dotted: str) -> bool:
    """``backend.credentials_file`` → True; ``eval.decoding.max_new_tokens`` → False."""
    leaf = dotted.rsplit(".", 1)[-1]
    return bool(SECRET_KEY.search(leaf)) and not _VOCAB_TOKEN.search(leaf)


def redact_uri(uri: str) -> str:
    """``http://u:p@host:5000/x?token=abc&a=1`` → ``http://***@host:5000/x?token=***&a=1``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return MASK
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_TOKEN_PARAM.search(k) for k, _ in pairs):
            query = "&".join(f"{k}={MASK if _TOKEN_PARAM.search(k) else v}" for k, v in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # untouched (urlunsplit would rewrite sqlite://// as sqlite://)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_credentials(text: str) -> str:
    """Credential-looking values in ``text`` masked, whatever names them (see the module docstring)."""
    if "PRIVATE KEY" in text:
        text = _PEM.sub(MASK, text)
    text = _AUTH.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if '"' in text:
        text = _JSON_PAIR.sub(lambda m: f'"{m.group(1)}"{m.group(2)}"{MASK}"'
                              if is_secret_key(m.group(1)) and m.group(3) else m.group(0), text)
    return _TOKENS.sub(MASK, text)


def redact_text(text: str) -> str:
    """Every URI inside ``text`` redacted, every ``secret_key=value`` (an override list such
    as a sweep's ``backend.api_token=abc train.lora.r=8``) and every credential-looking value masked."""
    text = redact_credentials(text)
    if "://" in text:
        text = _URI.sub(lambda m: redact_uri(m.group(0)), text)
    if "=" in text:
        text = _ASSIGN.sub(lambda m: f"{m.group(1)}={MASK}" if is_secret_key(m.group(1)) else m.group(0),
                           text)
    return text


def redact_value(dotted: str, value: Any) -> Any:
    """A config value as it may be recorded under its dotted key."""
    if is_secret_key(dotted) and value not in _UNSET and not isinstance(value, (bool, int, float)):
        return MASK
    return redact_text(value) if isinstance(value, str) else value


def redact_config(node: Any, prefix: str = "") -> Any:
    """A plain config container (dicts, lists, scalars) with secrets masked."""
    if isinstance(node, dict):
        return {k: redact_config(v, f"{prefix}{k}.") if isinstance(v, (dict, list))
                else redact_value(f"{prefix}{k}", v) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_config(v, prefix) if isinstance(v, (dict, list)) else
                redact_value(prefix[:-1], v) for v in node]
    return node


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with ``key=secret`` overrides and URIs masked."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        out.append(f"{key}={redact_value(key.lstrip('+~'), value)}" if eq else redact_text(arg))
    return out
