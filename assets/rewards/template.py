"""Template for your own reward: copy this file, rename it, and edit `reward`.

RL Studio imports this file and calls the function named `reward`. Higher
scores mean "more of this, please". Write it in ONE of three forms:

1. Per-sample (simplest). Name the first parameter `prompt`:

       def reward(prompt: str, completion: str, **columns) -> float | None:
           ...

   It is called once per completion and returns one number.

2. Batched (faster for slow scoring, e.g. a model). Name the first
   parameter `prompts`:

       def reward(prompts: list[str], completions: list[str], **columns) -> list[float | None]:
           ...

   It is called once per batch and returns one number per completion, in order.

3. TRL's form (a reward from TRL's docs or `trl.rewards` works as it is):

       def reward_len(completions, **kwargs) -> list[float]:
           ...

   Called by keyword with `prompts`, `completions`, `completion_ids` (token ids) and
   every column. Name the function in the recipe when it is not `reward`:
   `params = { path = "rewards.py", function = "reward_len" }`.

`columns` holds any extra keys from the prompt set's lines (for example
"reference"), plus `finished` and `completion_ids`. Name a column as a parameter
to receive it, or keep `**columns` to accept whatever is there. When the prompts
are chats (lists of {"role", "content"} messages), prompts arrive as those lists
and each completion as [{"role": "assistant", "content": text}], as in TRL.

Rules for the returned numbers: real numbers (True/False count as 1/0), never
NaN or infinity. Return None for a sample your reward does not apply to (a
maths checker shown a sample without a number): that sample's total comes
from the other rewards, and this reward's mean in the plots skips it. Keep
scores on a modest scale (roughly -1..1 or 0..10); the weight in the recipe
scales them further. The function runs in a separate
worker process with a time limit per batch. If it raises, hangs, crashes or
returns a bad value, the message names the line in this file and the sample;
the studio pauses the run until you fix the file and press Resume (from the
command line, `rlstudio resume RUN_ID` carries the run on). `print` output
shows in the studio's log.
"""


def reward(prompt: str, completion: str, **columns) -> float:
    # Example: prefer completions that end with a full stop and are not empty.
    text = completion.strip()
    if not text:
        return 0.0
    return 1.0 if text.endswith(".") else 0.5
