"""Several processes: `distributed` (torch.distributed under torchrun / accelerate: ranks,
collectives, sharding the batch) and `sharding` (FSDP of the language model)."""
