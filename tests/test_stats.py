"""Step statistics: the skip flags built from SKIP_REASONS, and their texts."""
from __future__ import annotations

import pytest
import torch

from fastngd.stats import GEN_OUTCOMES, SKIP_GRAM, SKIP_LR, SKIP_REASONS, StepStats, skip_flags

T, F = torch.tensor(True), torch.tensor(False)


def test_skip_flags_set_the_bits_of_the_failed_checks() -> None:
    flags = skip_flags({bit: (T if bit in (SKIP_GRAM, SKIP_LR) else F) for bit in SKIP_REASONS})
    assert flags.item() == SKIP_GRAM | SKIP_LR
    assert skip_flags({bit: F for bit in SKIP_REASONS}).item() == 0
    with pytest.raises(ValueError, match="unknown"):
        skip_flags({32: T})


def test_reasons_and_outcomes_in_words() -> None:
    z = torch.zeros(())
    stats = StepStats(*(z,) * 11, skip_flags=torch.tensor(SKIP_GRAM | SKIP_LR),
                      gen_outcome=torch.tensor(3))
    assert stats.skip_reason == f"{SKIP_REASONS[SKIP_GRAM]}; {SKIP_REASONS[SKIP_LR]}"
    assert stats.gen_report == GEN_OUTCOMES[3]
    d = stats.as_dict()
    assert d["skip_reason"] == stats.skip_reason and d["retain_dot_update"] is None
