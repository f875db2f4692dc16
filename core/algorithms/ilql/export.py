"""What an exported ILQL model carries besides the LM: its heads and a note saying how to
decode with them."""

from __future__ import annotations

from pathlib import Path

ILQL_NOTE = """# ILQL heads

`ilql_heads.safetensors` holds the Q, target-Q and V heads trained with this model
(RL Studio's `core.algorithms.ilql.ILQLHeads`; hidden size {hidden}, {n_qs} Q head(s)).
The language model alone samples like the policy before the heads' adjustment. To decode
as ILQL does, at every step add beta * (min over target Q heads - V) to the logits:

```python
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from core.algorithms.ilql import ILQLHeads, ilql_decode_logits

lm = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")
heads = ILQLHeads(lm.config.hidden_size, lm.config.vocab_size, two_qs={two_qs})
heads.load_state_dict(load_file("THIS_FOLDER/ilql_heads.safetensors"))
out = lm(input_ids, output_hidden_states=True)
_qs, target_qs, v = heads(out.hidden_states[-1][:, -1:])
logits = ilql_decode_logits(out.logits[:, -1:], target_qs, v, beta={beta})
```

`core.algorithms.ilql.decoding.ilql_generate` is the full sampling loop (KV cache,
top-k / top-p, EOS).
"""


def export_heads(heads_state: dict, out: Path, beta: float) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in heads_state.items()}, out / "ilql_heads.safetensors")
    n_qs = len({k.split(".")[1] for k in heads_state if k.startswith("q_heads.")})
    hidden = heads_state["v_head.0.weight"].shape[1]
    (out / "ILQL_README.md").write_text(
        ILQL_NOTE.format(hidden=hidden, n_qs=n_qs, two_qs=n_qs == 2, beta=beta)
    )
