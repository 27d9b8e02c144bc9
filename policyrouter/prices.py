"""Prices from litellm's local cost map, for deployments whose registry entry gives none.

The map is the JSON file that ships inside the litellm package. It is read as plain JSON, found with
`importlib.util.find_spec` (which locates the package without executing it): importing litellm takes
seconds, and loading a registry should not. The network is never used.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from policyrouter.registry import Price

COST_MAP_FILE = "model_prices_and_context_window_backup.json"


def lookup_price(litellm_provider: str, model_id: str) -> Price | None:
    """The price litellm's local cost map gives for this provider's model id, or None when unknown.

    Tries `provider/model_id` first, then the bare `model_id` when the map files it under the same
    provider (a bare `gpt-4o` is OpenAI's price, not Azure's).
    """
    cost_map = _cost_map()
    prefixed = cost_map.get(f"{litellm_provider}/{model_id}")
    if isinstance(prefixed, Mapping) and (price := _price_of(prefixed)) is not None:
        return price
    bare = cost_map.get(model_id)
    if isinstance(bare, Mapping) and bare.get("litellm_provider") == litellm_provider:
        return _price_of(bare)
    return None


def _price_of(entry: Mapping[str, Any]) -> Price | None:
    """A cost map entry's price, converted from USD per token to USD per million tokens."""
    per_input = entry.get("input_cost_per_token")
    per_output = entry.get("output_cost_per_token")
    if not _is_number(per_input) or not _is_number(per_output):
        return None
    return Price(input_per_mtok=_per_mtok(per_input), output_per_mtok=_per_mtok(per_output))


def _per_mtok(per_token: float) -> float:
    return round(per_token * 1e6, 9)  # 1.1e-07 * 1e6 is 0.11000000000000001


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@functools.cache
def _cost_map() -> Mapping[str, Any]:
    """The parsed cost map, read once on first use; empty when litellm or its map is missing."""
    path = _cost_map_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cost_map_version() -> str:
    """Which cost map prices come from: its path, size and modification time ("" when there is none).
    What reads a registry can be reused only while this stays the same."""
    path = _cost_map_path()
    if path is None:
        return ""
    try:
        info = path.stat()
    except OSError:
        return ""
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"


def _cost_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / COST_MAP_FILE
        if candidate.is_file():
            return candidate
    return None
