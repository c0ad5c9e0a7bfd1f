"""Kernel tests run on CPU tensors in Triton's interpreter, selected before triton is imported."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"
