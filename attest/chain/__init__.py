"""Chain I/O over web3: contract artifacts and ABIs, the UMA OptimisticOracleV3 and VotingV2 clients, and
transaction sending (`Sender`: static call, balance check and a gas margin before every signature).

The public modules are listed in `__all__`; import from them (`from attest.chain.tx import Sender`). Nothing
here knows about the devnet, the ledger or the disputer.
"""

__all__ = ["abi", "artifacts", "oov3", "rpc", "tx", "voting"]
