"""Names, defaults and limits of the upload pipeline that front doors show before it loads.

The command line builds its options (and ``--help``) from these; importing the chunkers or the
tokenizer for them would load numpy and the tokenizer library on every command.
"""

from __future__ import annotations

__all__ = [
    "CHUNKING_STRATEGIES",
    "DEFAULT_STRATEGY",
    "MAX_TEXT_TOKENS",
    "MODEL_WINDOW",
    "SPECIAL_TOKENS_PER_INPUT",
]

#: Tokens all-MiniLM-L6-v2 reads per input, [CLS] and [SEP] included.
MODEL_WINDOW = 256
#: [CLS] at the start and [SEP] at the end of every input.
SPECIAL_TOKENS_PER_INPUT = 2
#: The longest text, in tokens, that the model embeds without truncation.
MAX_TEXT_TOKENS = MODEL_WINDOW - SPECIAL_TOKENS_PER_INPUT

CHUNKING_STRATEGIES = ("recursive", "markdown", "sentence", "semantic", "token", "fixed")
DEFAULT_STRATEGY = "recursive"
