"""The local devnet, a product feature of the CLI: anvil with the real UMA stack and our registry deployed.

A layer above attest.chain: it deploys through the chain layer's `Sender`, and only attest.connect and the CLI
use it. Its public keys are attest.accounts' `dev:N` accounts.
"""

from attest.devnet.node import Devnet, DevnetStatus, NodeInfo
from attest.devnet.stack import Deployment, StackParams, deploy_stack

__all__ = ["Deployment", "Devnet", "DevnetStatus", "NodeInfo", "StackParams", "deploy_stack"]
