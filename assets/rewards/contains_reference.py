"""Reward 1.0 when the completion contains the prompt's reference answer, else 0.0.

Shows how a reward reads an extra column from the prompt set: each line of
assets/prompts/questions.jsonl has a "reference" key, passed here by name.
"""


def reward(
    prompts: list[str], completions: list[str], reference: list[str], **columns
) -> list[float]:
    return [
        1.0 if ref.strip().lower() in completion.lower() else 0.0
        for completion, ref in zip(completions, reference)
    ]
