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


def redact_text(text: str) -> str:
    """Every URI inside ``text`` redacted, and every ``secret_key=value`` (an override list such
    as a sweep's ``backend.api_token=abc train.lora.r=8``) masked."""
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
