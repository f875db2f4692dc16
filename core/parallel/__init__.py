"""Several processes: torch.distributed helpers and FSDP sharding."""
