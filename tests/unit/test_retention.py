"""Which checkpoints retention keeps: the latest, the most recent n, the best k by eval loss."""

from services.trainer.retention import Saved, to_delete

RUN = [Saved("checkpoint-10", 10, 2.0), Saved("checkpoint-20", 20, 1.2), Saved("checkpoint-30", 30, 1.5),
       Saved("checkpoint-40", 40, 1.1), Saved("checkpoint-50", 50, 1.9), Saved("checkpoint-60", 60, None)]


def test_nothing_deleted_without_a_policy():
    assert to_delete(RUN, 0, 0) == {}


def test_best_k_and_the_latest():
    gone = to_delete(RUN, 0, 2)
    assert sorted(gone) == ["checkpoint-10", "checkpoint-30", "checkpoint-50"]  # kept: 40, 20 (best), 60 (latest)
    assert gone["checkpoint-10"] == "not among the 2 best by eval loss nor the latest"


def test_recent_and_best_together():
    assert sorted(to_delete(RUN, 2, 1)) == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]  # keep 40, 50, 60


def test_recent_only_is_transformers_save_total_limit():
    assert sorted(to_delete(RUN, 3, 0)) == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]


def test_ties_prefer_the_later_checkpoint_and_unevaluated_ones_are_never_best():
    tied = [Saved("checkpoint-1", 1, 1.0), Saved("checkpoint-2", 2, 1.0), Saved("checkpoint-3", 3, None),
            Saved("checkpoint-4", 4, None)]
    assert sorted(to_delete(tied, 0, 1)) == ["checkpoint-1", "checkpoint-3"]
