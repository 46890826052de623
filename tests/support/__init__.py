"""Dev and test infrastructure, kept out of the runtime packages (an import-linter contract forbids attest and
disputer from importing it): the VotingV2 (DVM) stack, the js-ipfs daemon, the fake model, pinning and gateway
servers, the RPC fault proxy, and the OOv3 sends tests make by hand. The benchmarks use it too."""
