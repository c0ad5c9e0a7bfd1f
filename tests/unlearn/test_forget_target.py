"""The forget target "refuse": the bounded ascent and the empty answer, against a float64
transcription of the definition, and what a run with it does."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.data import TextDataset, collate_right_pad
from fastngd.data.tokenize import IGNORE_INDEX
from fastngd.errors import UsageError
from fastngd.unlearn import CausalLMTask, ClassifierTask, UnlearnConfig, unlearn
from fastngd.unlearn.forget_target import ForgetTarget, resolve_forget_target
from fastngd.unlearn.stopping import ForgetGapStop

from .conftest import make_classifier_data

EOS = 3  # build_word_tokenizer's EOS id (tiny_llama_config's default)


def _batch(data):
    return collate_right_pad([data[i] for i in range(len(data))], 0)


@torch.no_grad()
def _reference(model, batch, cap: float) -> tuple[list[float], list[float], list[float]]:
    """(Σ_t min(ℓ_t, cap), n, ℓ^∅) per example, one example at a time in float64; an EOS
    label adds the constant cap (the refusal term owns EOS)."""
    ref = copy.deepcopy(model).double()
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        keep = int((labels != IGNORE_INDEX).nonzero().max()) + 1
        ids, labels = ids[:keep], labels[:keep]
        logp = torch.log_softmax(ref(input_ids=ids[None]).logits[0], dim=-1)
        total, n = 0.0, 0
        for t in range(1, keep):
            if labels[t] != IGNORE_INDEX:
                total += cap if labels[t] == EOS else min(-float(logp[t - 1, labels[t]]), cap)
                n += 1
        prompt = int((labels == IGNORE_INDEX).long().cumprod(0).sum())
        empty = torch.log_softmax(ref(input_ids=ids[None, :prompt]).logits[0, -1], dim=-1)
        out[0].append(total)
        out[1].append(float(n))
        out[2].append(-float(empty[EOS]))
    return out


def test_score_matches_the_float64_definition(trained_lm, lm_data) -> None:
    forget, _ = lm_data
    batch = _batch(forget)
    task = CausalLMTask(0, EOS)
    cap = 0.05  # low enough that some answer tokens are capped and some are not
    want = _reference(trained_lm, batch, cap)
    per_token = _reference(trained_lm, batch, math.inf)[0]
    assert any(a > b + 1e-9 for a, b in zip(per_token, want[0]))  # the cap bites somewhere
    nll, n, empty = ForgetTarget(cap=cap).score(task, trained_lm, batch)
    assert nll.tolist() == pytest.approx(want[0], rel=1e-5, abs=1e-6)
    assert n.tolist() == want[1]
    assert empty is not None and empty.tolist() == pytest.approx(want[2], rel=1e-5, abs=1e-6)


def test_capped_tokens_carry_no_gradient_and_the_empty_answer_does(trained_lm, lm_data) -> None:
    """With a cap below every token's loss the answers add a constant (zero gradient); the
    empty answer's loss is never capped."""
    batch = _batch(lm_data[0])
    nll, n, empty = ForgetTarget(cap=1e-6).score(CausalLMTask(0, EOS), trained_lm,
                                                              batch)
    assert torch.allclose(nll, 1e-6 * n)
    params = [p for p in trained_lm.parameters() if p.requires_grad]
    grads = torch.autograd.grad(nll.sum(), params, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    assert empty is not None and bool((empty > 1e-6).all())
    grads = torch.autograd.grad(empty.sum(), params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_the_eos_label_carries_no_gradient_in_the_ascent(trained_lm, lm_data) -> None:
    """With an uncapped answer, the gradient of the refuse ascent equals that of the answer
    tokens other than EOS: the end of a forget answer is never pushed down."""
    batch = _batch(lm_data[0])
    nll, _, _ = ForgetTarget(cap=1e6).score(CausalLMTask(0, EOS), trained_lm, batch)
    content = {k: v.clone() for k, v in batch.items()}
    content["labels"][content["labels"] == EOS] = IGNORE_INDEX
    assert bool((batch["labels"] == EOS).any())
    plain, _ = CausalLMTask(0, EOS).nll(trained_lm, content)
    params = [p for p in trained_lm.parameters() if p.requires_grad]
    got = torch.autograd.grad(nll.sum(), params, allow_unused=True)
    want = torch.autograd.grad(plain.sum(), params, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g, w, atol=1e-6)


@torch.no_grad()
def test_text_empty_continuation_is_eos_at_every_position(tiny_lm, word_tokenizer) -> None:
    """On raw text (no prompt) ℓ^∅ is the mean over the scored positions of −log π(EOS | x_<t),
    float64 reference; with a cap, the final EOS label adds the constant cap to nll
    (``nll()``, the retain loss, keeps its loss); a task without an EOS id has none."""
    text = TextDataset([{"text": "the family lived in the north ."},
                        {"text": "a parrot ."}], word_tokenizer, 32)
    batch = _batch(text)
    cap = 50.0  # above every token loss here: only the EOS label is at the cap
    nll, n, empty = CausalLMTask(0, EOS).scores(tiny_lm, batch, cap)
    ref = copy.deepcopy(tiny_lm).double()
    for i, (ids, labels) in enumerate(zip(batch["input_ids"], batch["labels"])):
        keep = int((labels != IGNORE_INDEX).nonzero().max()) + 1
        logp = torch.log_softmax(ref(input_ids=ids[None, :keep]).logits[0], dim=-1)
        want = [-float(logp[t - 1, EOS]) for t in range(1, keep)]
        assert empty is not None and float(empty[i]) == pytest.approx(sum(want) / len(want),
                                                                     rel=1e-5)
        assert int(labels[keep - 1]) == EOS and EOS not in labels[1:keep - 1].tolist()
        content = [-float(logp[t - 1, labels[t]]) for t in range(1, keep - 1)]
        assert float(nll[i]) == pytest.approx(sum(min(x, cap) for x in content) + cap,
                                              rel=1e-5)
        assert float(n[i]) == keep - 1
        full, count = CausalLMTask(0, EOS).nll(tiny_lm, batch)
        assert float(full[i]) == pytest.approx(sum(content) - float(logp[keep - 2, EOS]),
                                               rel=1e-5)
        assert float(count[i]) == keep - 1
    assert CausalLMTask(0).scores(tiny_lm, batch)[2] is None


@torch.no_grad()
def test_an_example_without_answer_has_no_empty_term(tiny_lm, lm_data) -> None:
    """A QA row whose labels are all -100 has ℓ^∅ = NaN and is left out of the mean, so it
    cannot shrink the gap; the other rows are unchanged."""
    from fastngd.unlearn.forget_target import with_empty

    batch = _batch(lm_data[0])
    bare = {k: v.clone() for k, v in batch.items()}
    bare["labels"][1] = IGNORE_INDEX
    task = CausalLMTask(0, EOS)
    _, _, full = task.scores(tiny_lm, batch)
    _, n, empty = task.scores(tiny_lm, bare)
    assert full is not None and empty is not None
    assert math.isnan(float(empty[1])) and float(n[1]) == 0
    keep = [i for i in range(len(empty)) if i != 1]
    assert torch.allclose(empty[keep], full[keep])
    value = with_empty(torch.tensor(1.0), empty)
    assert float(value) == pytest.approx(1.0 - float(full[keep].mean()), rel=1e-6)
    assert float(with_empty(torch.tensor(1.0), torch.full((2,), math.nan))) == 1.0


@torch.no_grad()
def test_prompted_rows_are_found_with_left_padding(tiny_lm, lm_data) -> None:
    """With left padding the first attended label decides QA vs text: each row's ℓ^∅ is
    −log π(EOS) at its first answer position only, padded on either side."""
    examples = [lm_data[0][i] for i in range(len(lm_data[0]))]
    right = collate_right_pad(examples, 0)
    width = right["input_ids"].shape[1]
    left = {"input_ids": [], "attention_mask": [], "labels": []}
    for e in examples:
        pad = width - len(e["input_ids"])
        left["input_ids"].append([0] * pad + list(e["input_ids"]))
        left["attention_mask"].append([0] * pad + [1] * len(e["input_ids"]))
        left["labels"].append([IGNORE_INDEX] * pad + list(e["labels"]))
    left_batch = {k: torch.tensor(v) for k, v in left.items()}
    task = CausalLMTask(0, EOS)
    _, _, a = task.scores(tiny_lm, right)
    _, _, b = task.scores(tiny_lm, left_batch)
    assert a is not None and b is not None
    ref = _reference(tiny_lm, right, math.inf)[2]
    assert a.tolist() == pytest.approx(ref, rel=1e-5)
    logp = torch.log_softmax(tiny_lm(input_ids=left_batch["input_ids"],
                                     attention_mask=left_batch["attention_mask"]).logits, -1)
    for i, labels in enumerate(left_batch["labels"]):
        t = int((labels != IGNORE_INDEX).nonzero().min())  # the first answer token
        assert float(b[i]) == pytest.approx(-float(logp[i, t - 1, EOS]), rel=1e-5)


def test_output_size_runs_in_eval_mode_and_restores_the_mode() -> None:
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(5, 4))

        def forward(self, x):
            seen.append(self.training)
            return x @ self.w

    model = Probe().train()
    assert ClassifierTask().output_size(model, (torch.zeros(2, 5), torch.zeros(2))) == 4
    assert seen == [False] and model.training


def test_resolve(tiny_lm, lm_data) -> None:
    task, batch = CausalLMTask(0, EOS), _batch(lm_data[0])
    refuse = resolve_forget_target(UnlearnConfig(), task, tiny_lm, batch)
    vocab = tiny_lm(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits.shape[-1]
    assert refuse == ForgetTarget(cap=math.log(vocab))
    ascent = UnlearnConfig(forget_target="ascent")
    assert resolve_forget_target(ascent, task, tiny_lm, batch) == ForgetTarget()
    npo = UnlearnConfig(method="npo")
    assert resolve_forget_target(npo, task, tiny_lm, batch) == ForgetTarget()
    model, forget, _ = make_classifier_data()
    classes = resolve_forget_target(UnlearnConfig(), ClassifierTask(), model,
                                    ClassifierTask().collate(forget[:2]))
    assert classes == ForgetTarget(cap=math.log(3))
    with pytest.raises(UsageError, match="forget_target"):
        resolve_forget_target(UnlearnConfig(forget_target="forget"), task, tiny_lm, batch)

    class Custom:
        def nll(self, model, batch):
            raise AssertionError

    with pytest.raises(UsageError, match="ascent"):
        resolve_forget_target(UnlearnConfig(), Custom(), tiny_lm, batch)


def test_a_default_run_answers_forget_questions_with_nothing(trained_lm, lm_data) -> None:
    """NGDiff with the defaults (the "refuse" target, the gap rule) on a model that knows the
    forget answers: it stops by the gap rule, the forget value never exceeds its bound ln V,
    the empty answer is then the likelier first token after every forget prompt, and the
    retain loss stays low."""
    forget, retain = lm_data
    batch, task = _batch(forget), CausalLMTask(0, EOS)
    retain_before = _ce(trained_lm, task, _batch(retain))
    result = unlearn(trained_lm, forget, retain, "ngdiff", epochs=200, batch_size=4,
                     retain_batch_size=12, stop_min_steps=0)
    cap = result.history[0]["forget_cap"]
    assert not result.completed
    assert all(h["loss_forget"] <= cap + 1e-5 for h in result.history)
    _, _, empty = ForgetTarget(cap=cap).score(task, trained_lm, batch)
    assert empty is not None and bool((empty < math.log(2.0)).all()), empty
    assert _ce(trained_lm, task, _batch(retain)) < max(2 * retain_before, 0.5)


def test_the_loop_records_each_examples_empty_answer_loss(trained_lm, lm_data) -> None:
    """``forget_losses`` and ``forget_empty`` of the first step are the capped token means and
    empty-answer losses of the model before it (float64 recomputation), and the per-example
    gap rule replays to the step where the run stopped, with every example then within
    ln 2."""
    forget, retain = lm_data
    before = copy.deepcopy(trained_lm)
    result = unlearn(trained_lm, forget, retain, "ngdiff", epochs=200, batch_size=4,
                     retain_batch_size=12, stop_min_steps=0)
    first = result.history[0]
    cap = first["forget_cap"]
    total, n, empty = _reference(before, _batch([forget[i] for i in first["forget_indices"]]),
                                 cap)
    assert first["forget_losses"] == pytest.approx([t / k for t, k in zip(total, n)], abs=1e-4)
    assert first["forget_empty"] == pytest.approx(empty, abs=1e-4)
    rule = ForgetGapStop()
    replay = [rule(h) for h in result.history]
    assert not result.completed and replay.index(True) + 1 == result.steps
    assert sorted(rule.latest) == list(range(len(forget)))
    assert max(rule.latest.values()) <= math.log(2.0)


def _ce(model, task, batch) -> float:
    with torch.no_grad():
        nll, n = task.nll(model, batch)
    return float(nll.sum() / n.sum())


def test_classifier_ascent_is_bounded_by_log_classes() -> None:
    model, forget, retain = make_classifier_data()
    result = unlearn(model, forget, retain, "ngdiff", epochs=20, batch_size=4, lr=0.5,
                     autolr=False, stop_gap=None)
    assert all(h["forget_cap"] == pytest.approx(math.log(3)) for h in result.history)
    assert all(h["loss_forget"] <= math.log(3) + 1e-6 for h in result.history)
    assert max(h["loss_forget"] for h in result.history) > result.history[0]["loss_forget"]


class _Logits(torch.nn.Module):
    """A stand-in causal LM whose logits are given (``[B, T, V]``)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, input_ids, attention_mask):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.logits)


@given(seed=st.integers(0, 10_000), vocab=st.integers(5, 40), scale=st.floats(0.1, 30.0),
       prompt=st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_the_forget_value_never_exceeds_its_bound(seed, vocab, scale, prompt) -> None:
    """F = Σ min(ℓ_t, ln V)/Σ n − mean ℓ^∅ ≤ ln V for any logits, QA (prompt > 0) or raw text
    (prompt = 0): each example's capped sum is at most ln V per token, and ℓ^∅ ≥ 0."""
    g = torch.Generator().manual_seed(seed)
    batch, length = 3, 8
    ids = torch.randint(4, vocab, (batch, length), generator=g)
    labels = ids.clone()
    labels[:, :prompt] = IGNORE_INDEX
    labels[0, length - 2:] = IGNORE_INDEX  # some right padding
    model = _Logits(scale * torch.randn(batch, length, vocab, generator=g, dtype=torch.float64))
    data = {"input_ids": ids, "attention_mask": (labels != IGNORE_INDEX).long(),
            "labels": labels}
    cap = math.log(vocab)
    nll, n, empty = ForgetTarget(cap=cap).score(CausalLMTask(0, EOS), model, data)
    assert empty is not None and bool((empty >= 0).all())
    value = float((nll.sum() / n.sum() - empty.mean()).detach())
    assert value <= cap + 1e-12
    assert bool((nll <= cap * n + 1e-9).all())


def test_special_token_ids_prefer_the_tokenizers_eos() -> None:
    from types import SimpleNamespace

    from fastngd.unlearn.tasks import special_token_ids

    model = SimpleNamespace(config=SimpleNamespace(pad_token_id=None, eos_token_id=[7, 8]))
    assert special_token_ids(model) == (None, 7)
    tokenizer = SimpleNamespace(pad_token_id=1, eos_token_id=8)
    assert special_token_ids(model, tokenizer) == (1, 8)
    model.config.pad_token_id = 0
    assert special_token_ids(model, tokenizer) == (0, 8)
