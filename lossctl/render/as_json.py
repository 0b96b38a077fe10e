"""JSON: one object per run, plain `json.dumps` of the data's `to_dict()`; inf and nan written as strings."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_value(x: Any) -> Any:
    """JSON-safe: JSON has no inf or nan, so they are said in text rather than emitted as invalid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (list, tuple)):
        return [json_value(v) for v in x]
    if isinstance(x, dict):
        return {k: json_value(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        return json_value(x.item())
    return x


def render(obj) -> str:
    # Every data type lossctl renders has to_dict(); one rule serves them all.
    return json.dumps(json_value(obj.to_dict()), allow_nan=False)
