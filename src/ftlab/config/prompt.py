"""Schema of the ``prompt`` group: one template for every backend."""

from __future__ import annotations

from dataclasses import dataclass

from ftlab.config.bounds import at_least


@dataclass
class PromptConfig:
    """The instruction, label list and input, rendered the same way for every backend."""

    name: str = "classify"
    """Short name of the prompt."""
    template: str = "{labels}\n{text}"
    """Python format string with `{text}` (the input) and, for classification, `{labels}` (the rendered label list; a generation task has none)."""
    label_line: str = "- {label}"
    """How one label is rendered inside `{labels}`."""
    system: str = ""
    """System message for chat models; empty = the model's default."""
    max_input_tokens: int = at_least(0, 256)
    """Backends with a tokenizer (local models) keep at most this many tokens of the input text, after
    the character budget; a remote backend has no tokenizer and ignores it; 0 = no limit."""
    max_input_chars: int = at_least(0, 0)
    """The host's character budget: every backend receives the input cut to this many characters, so
    all of them read the same text (prompt=classify_portable sets it for cross-backend comparisons);
    0 = no limit. Each prediction records the cuts made (predictions.jsonl `truncation`)."""
    truncation_side: str = "right"
    """right = keep the beginning of the text, left = keep the end, middle = keep both ends and cut
    the middle (marked with `[...]`; diagnoses and plans often sit at the end of a transcript)."""
    middle_tail: int = at_least(0, 64)
    """truncation_side=middle: how many of the kept tokens (or characters) come from the end."""
    use_chat_template: bool = True
    """Wrap the prompt in the model's chat template when it has one (local models; a remote model
    applies its own)."""

    def __post_init__(self) -> None:
        if self.truncation_side not in ("left", "right", "middle"):
            raise ValueError("prompt.truncation_side must be 'left', 'right' or 'middle'")
        if "{text}" not in self.template:
            raise ValueError("prompt.template must contain {text}")
