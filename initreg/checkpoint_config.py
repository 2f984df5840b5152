"""The model config a checkpoint's folder holds: ``config.json`` beside the weights, as transformers'
``save_pretrained`` writes them (``model.safetensors``, ``model-00001-of-00002.safetensors``, ...).

Recipes read their structural variables (depth, widths, ``initializer_range``, ``pad_token_id``) from it
as they read ``model.config`` of a loaded model, so a checkpoint on disk is checked or re-initialized with
the values its own config states.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from initreg.errors import InvalidArgumentError

CONFIG_NAME = "config.json"


def config_beside(checkpoint: str | os.PathLike[str]) -> tuple[dict[str, Any], Path] | None:
    """(the config, its path) of the ``config.json`` in the checkpoint's folder, or None when there is none.

    A file that cannot be read, is not JSON, or is not a JSON object is an error naming it.
    """
    path = Path(checkpoint).parent / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidArgumentError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidArgumentError(f"{str(path)!r} beside the checkpoint is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise InvalidArgumentError(
            f"{str(path)!r} beside the checkpoint holds {type(config).__name__}; valid: an object"
        )
    return config, path
