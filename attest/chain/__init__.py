"""Chain I/O: contract artifacts, the UMA OptimisticOracleV3 client, transaction sending and the deployer."""
