"""The storage-node process: the engine of leofs.storage served on the cluster (replication,
repair, membership, its internal and admin API)."""
