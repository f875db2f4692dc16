"""The same run as two processes under `torchrun --nproc_per_node 2` (gloo, CPU, tiny-random).

The CLI case runs `rlstudio train` and `rlstudio resume` unchanged under torchrun; the
loop case runs this file itself as the worker (`python -m torch.distributed.run ...
tests/core/test_distributed.py worker OUT`), which trains and writes what each rank saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import distributed
from tests.core.helpers import ROOT, TINY_RECIPE, tiny_config

pytestmark = pytest.mark.slow  # two processes that each load torch and train: a minute


def _torchrun(args: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "RLSTUDIO_HOME": str(tmp_path / "home"),
        "RLSTUDIO_DIST_BACKEND": "gloo",
        "RLSTUDIO_DIST_TIMEOUT_S": "120",  # a rank that dies ends the test, not CI
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        *args,
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    return out


def test_rlstudio_train_and_resume_run_unchanged_under_torchrun(tmp_path: Path) -> None:
    from core.store import Store

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cli = ["-m", "core.cli"]
    common = ["--set", "training.checkpoint_every=2", "--set", "logging.samples_per_step=2"]
    out = _torchrun(
        [*cli, "train", str(TINY_RECIPE), "--db", db, "--steps", "4", *common], tmp_path
    )
    assert out.stdout.count("stored in") == 1  # rank 0 alone reports (and writes)
    with Store(db) as store:
        runs = store.runs()
        assert len(runs) == 1, "only rank 0 creates the run row"
        run = runs[0]
        assert run.status == "completed" and run.last_step == 4
        metrics = store.metrics(run.id)
        assert metrics["reward/mean"].steps.tolist() == [1, 2, 3, 4]
        assert {len(s.steps) for s in metrics.values()} == {4}  # one row per step and key
        assert [c.step for c in store.checkpoints(run.id)] == [2, 4]
        assert store.sample_count(run.id) == 4 * 2  # rank 0's samples only
        logs = [e.message for e in store.logs(run.id)]
        assert sum(m.startswith("no held-out prompts") for m in logs) == 1
        state = Path(store.checkpoints(run.id)[-1].path) / "trainer_state.pt"
        import torch

        assert len(torch.load(state, weights_only=False)["rng_ranks"]) == 2

    # Resume in the same launch mode: from step 4's checkpoint to step 6.
    _torchrun([*cli, "resume", str(run.id), "--db", db, "--steps", "6"], tmp_path)
    with Store(db) as store:
        run = store.run(run.id)
        assert run.status == "completed" and run.last_step == 6
        assert store.metrics(run.id)["reward/mean"].steps.tolist() == [1, 2, 3, 4, 5, 6]
        assert [c.step for c in store.checkpoints(run.id)][-1] == 6


def test_two_ranks_keep_identical_weights_and_the_reward_still_rises(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    _torchrun([str(Path(__file__).resolve()), "worker", str(out_dir)], tmp_path, timeout=900)
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    a, b = (r["digests"] for r in ranks)
    assert len(a) == len(b) == 40
    assert a == b, "the weights differ between ranks after a step"
    assert len(set(a)) == 40, "the weights did not move at every step"
    assert ranks[0]["initial"] == ranks[1]["initial"]
    assert ranks[0]["completions"] != ranks[1]["completions"], "the ranks sampled alike"
    rewards = np.array(ranks[0]["rewards"])
    assert np.array_equal(rewards, ranks[1]["rewards"])  # the metrics are combined over ranks
    first, last = rewards[:5].mean(), rewards[-5:].mean()
    assert last > first + 0.02, f"reward went {first:.3f} -> {last:.3f}"
    grpo = [r["grpo_digests"] for r in ranks]
    assert grpo[0] == grpo[1] and len(grpo[0]) == 2


def _digest(module) -> str:
    h = hashlib.sha256()
    for _name, p in sorted(module.state_dict().items()):
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _worker(out_dir: Path) -> None:
    """One rank: 40 PPO steps on the learnable tiny task (global batch 8, 4 prompts per rank)
    and 2 GRPO steps (2 prompts x 4 completions: one whole group per rank)."""
    from core import rollout
    from core.events import Metrics
    from core.train import train

    with distributed.session():
        assert distributed.world_size() == 2
        seen: list = []
        original = rollout.generate_rollout

        def spy(models, prompts, *args, **kwargs):
            result = original(models, prompts, *args, **kwargs)
            seen.append(list(result.completions))
            if not hasattr(spy, "initial"):
                spy.initial = _digest(models.policy)
            spy.models = models
            return result

        import core.train as train_module

        train_module.generate_rollout = spy
        cfg = tiny_config({"training.steps": 40, "training.checkpoint_every": 0})
        digests, rewards = [], []
        for event in train(cfg):
            if isinstance(event, Metrics):
                digests.append(_digest(spy.models.policy))
                rewards.append(event.values["reward/mean"])
        initial = spy.initial
        completions = seen[:3]
        cfg = tiny_config(
            {
                "algorithm.name": "grpo",
                "algorithm.group_size": 4,
                "training.batch_size": 2,
                "training.steps": 2,
                "training.checkpoint_every": 0,
            }
        )
        grpo = []
        for event in train(cfg):
            if isinstance(event, Metrics):
                grpo.append(_digest(spy.models.policy))
                assert len(seen[-1]) == 4  # one prompt's whole group on this rank
        out_dir.mkdir(parents=True, exist_ok=True)
        rank = distributed.rank()
        (out_dir / f"rank{rank}.json").write_text(
            json.dumps(
                {
                    "digests": digests,
                    "rewards": rewards,
                    "initial": initial,
                    "completions": completions,
                    "grpo_digests": grpo,
                }
            )
        )


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(Path(sys.argv[2]))
