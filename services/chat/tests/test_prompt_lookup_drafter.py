"""The prompt-lookup drafter and its adaptive length, alone (no model): what it proposes and when."""

from __future__ import annotations

from chat_service.engine.batched.speculation import FIRST_DRAFT, AdaptiveDraftLength, PromptLookupDrafter


def test_drafts_follow_the_latest_earlier_occurrence_of_the_longest_matching_suffix() -> None:
    # ... 7 8 9 occurs twice before the suffix; the later one is followed by 5 6, the earlier by 1 2.
    drafter = PromptLookupDrafter([7, 8, 9, 1, 2, 3, 7, 8, 9, 5, 6, 4, 8, 9], max_ngram=3)
    # Suffix (4, 8, 9) never occurred; (8, 9) did, last followed by 5 6 4 8.
    assert drafter.propose(4) == [5, 6, 4, 8]
    drafter.append(5)
    # Now (8, 9, 5) occurred once before (positions 7-9): followed by 6 4 8 9 5 (the drafts may run to the end).
    assert drafter.propose(3) == [6, 4, 8]
    assert drafter.propose(10) == [6, 4, 8, 9, 5]


def test_a_longer_match_wins_over_a_later_shorter_one() -> None:
    # (1, 2) then 3 early; a lone 2 later followed by 9; the suffix is (1, 2).
    drafter = PromptLookupDrafter([1, 2, 3, 4, 2, 9, 5, 1, 2], max_ngram=2)
    assert drafter.propose(2) == [3, 4]
    unigram = PromptLookupDrafter([1, 2, 3, 4, 2, 9, 5, 1, 2], max_ngram=1)
    assert unigram.propose(2) == [9, 5]  # the latest 2 is followed by 9


def test_with_no_earlier_match_the_draft_is_the_last_token_again() -> None:
    drafter = PromptLookupDrafter([1, 2, 3], max_ngram=3)
    assert drafter.propose(4) == [3]
    assert PromptLookupDrafter([], max_ngram=3).propose(4) == []
    assert drafter.propose(0) == []


def test_draft_length_grows_after_full_acceptance_and_falls_back_to_what_was_accepted() -> None:
    length = AdaptiveDraftLength(limit=8)
    assert length.length == FIRST_DRAFT
    length.update(drafted=4, accepted=4)
    assert length.length == 6
    length.update(drafted=6, accepted=6)
    length.update(drafted=8, accepted=8)
    assert length.length == 8  # capped
    length.update(drafted=8, accepted=2)
    assert length.length == 3
    length.update(drafted=3, accepted=0)
    assert length.length == 1  # never below one: a speculating row always verifies a draft
    assert AdaptiveDraftLength(limit=2).length == 2
