"""The trial call a run makes before its row exists: each user reward file is called once
on a small dummy batch built from the prompt set, so that a function whose parameters
cannot take a batch is one clear message at the start, not a paused run at step 1."""

from __future__ import annotations

from core.data import PromptSet, as_chats
from core.rewards.composite import CompositeReward
from core.rewards.errors import RewardConfigError, RewardError, RewardSignatureError

DUMMY_COMPLETION = "A short dummy completion."
_TRIAL_ROWS = 2


def trial_call(reward: CompositeReward, prompt_set: PromptSet) -> None:
    """Call each user-code component as training will (TRL's keywords, chats as message
    lists, the columns plus those the rollout adds); raise ``RewardConfigError`` for a
    signature that cannot work. Built-ins and judges are skipped (their parameters are
    checked when they are built, and a judge would load its model). A reward that fails
    on the dummy text itself is left to training: real completions may suit it."""
    idx = list(range(min(_TRIAL_ROWS, len(prompt_set))))
    prompts, columns = prompt_set.batch(idx)
    completions = [DUMMY_COMPLETION] * len(idx)
    # The columns Rollout.reward_columns adds to the prompt set's.
    columns = {**columns, "finished": [True] * len(idx), "completion_ids": [[0, 1, 2]] * len(idx)}
    for c in reward.components:
        if not c.user_code:
            continue
        try:
            c.fn(*as_chats(prompts, completions), **columns)
        except RewardSignatureError as exc:
            raise RewardConfigError(f"reward '{c.name}': {exc}") from None
        except RewardError:
            pass
