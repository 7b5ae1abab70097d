"""The batched next-token choice (services/sampling.py): transformers' warpers' distribution, each row's own draws."""

import collections

import pytest
import torch
from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)

from aigc_hub.services.sampling import RowSettings, next_tokens, warped

SETTINGS = [(0.8, 50, 0.95), (1.0, 0, 1.0), (0.3, 5, 1.0), (1.3, 0, 0.5), (0.7, 3, 0.9), (2.0, 1, 1.0)]


def hf_warped(temperature: float, top_k: int, top_p: float, scores: torch.Tensor) -> torch.Tensor:
    steps = [TemperatureLogitsWarper(temperature)]
    if top_k:
        steps.append(TopKLogitsWarper(top_k))
    if top_p < 1:
        steps.append(TopPLogitsWarper(top_p))
    return LogitsProcessorList(steps)(None, scores)


def test_each_row_is_filtered_as_transformers_warpers_filter_it_alone():
    torch.manual_seed(0)
    scores = torch.randn(len(SETTINGS), 300) * 3
    rows = [RowSettings(t, k, p, 1.0, seed=i) for i, (t, k, p) in enumerate(SETTINGS)]
    ours = warped(rows, scores)
    for i, (t, k, p) in enumerate(SETTINGS):
        theirs = hf_warped(t, k, p, scores[i : i + 1])
        assert torch.equal(torch.isinf(ours[i : i + 1]), torch.isinf(theirs)), SETTINGS[i]
        kept = ~torch.isinf(theirs)
        torch.testing.assert_close(ours[i : i + 1][kept], theirs[kept])


def test_a_row_draws_the_same_tokens_in_any_batch_and_greedy_rows_take_the_best():
    torch.manual_seed(1)
    steps = [torch.randn(4, 80) for _ in range(30)]
    histories = [torch.randint(0, 80, (1, 12)) for _ in range(4)]

    def rows():  # fresh generators: a penalty row, a greedy row, two sampled rows
        return [RowSettings(0.9, 20, 0.9, 1.3, seed=7), RowSettings(0, 0, 1.0, 1.0, seed=8),
                RowSettings(1.0, 0, 1.0, 1.0, seed=9), RowSettings(0.5, 0, 0.8, 1.0, seed=10)]

    together, alone = rows(), rows()
    batched = [next_tokens(together, histories, logits) for logits in steps]
    for i in range(4):
        single = [next_tokens([alone[i]], [histories[i]], logits[i : i + 1])[0] for logits in steps]
        assert single == [tokens[i] for tokens in batched]
    assert [tokens[1] for tokens in batched] == [int(logits[1].argmax()) for logits in steps]  # the greedy row


def test_a_repetition_penalty_applies_to_its_own_row_only():
    logits = torch.tensor([[3.0, 2.9, 0.0], [3.0, 2.9, 0.0]])
    history = torch.tensor([[0, 0]])  # both rows have written token 0; only the first row penalises it
    rows = [RowSettings(0, 0, 1.0, 2.0, seed=1), RowSettings(0, 0, 1.0, 1.0, seed=2)]
    penalised = RepetitionPenaltyLogitsProcessor(2.0)(history, logits[:1].clone())  # what generate() would do
    assert next_tokens(rows, [history, history], logits) == [int(penalised.argmax()), 0] == [1, 0]


def test_draws_follow_the_filtered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    row = RowSettings(1.0, 4, 1.0, 1.0, seed=3)
    draws = 8_000  # the 0.015 margin is 2.8 standard errors at the likeliest token; the draws are seeded
    counts = collections.Counter(next_tokens([row], [torch.zeros(1, 1, dtype=torch.long)], logits)[0]
                                 for _ in range(draws))
    expected = torch.softmax(hf_warped(1.0, 4, 1.0, logits), -1)[0]
    for token in range(6):
        assert abs(counts[token] / draws - float(expected[token])) < 0.015, (token, counts)
    assert counts[4] == counts[5] == 0  # cut by top-k


def test_scores_with_nothing_to_sample_from_are_an_error_not_a_token():
    rows = [RowSettings(1.0, 0, 1.0, 1.0, seed=1)]
    with pytest.raises(ValueError, match="no finite probabilities"):
        next_tokens(rows, [torch.zeros(1, 1, dtype=torch.long)], torch.full((1, 5), float("nan")))
