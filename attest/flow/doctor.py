"""`attest doctor`: is a network's setup ready before money moves? One finding per check: pass, warn or fail,
each warning and failure naming its fix.

The checks read (chain, IPFS remotes, the environment) and never sign or send. They are small functions over a
connection, so the disputer's start-up runs the ones it needs (the OOv3 and registry code, gas money, the bond).
A check that needs an earlier one (the registry needs OOv3, balances need the account) is left out when that one
failed: its failure already names the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal, cast

from web3 import Web3

from attest.chain.registry import read_registry
from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.errors import AttestError
from attest.flow.token import Token
from attest.networks import DEVNET_MIN_LIVENESS
from attest.storage import Postgres

Status = Literal["pass", "warn", "fail"]

# Gas of one attestation's transactions, measured on the real UMA contracts (docs/benchmarks.md): assertTruth with
# our registry as callback recipient, and its settle. The approve is estimated on the chain itself.
ASSERT_GAS = 246_158
SETTLE_GAS = 102_209
DISPUTE_GAS = 334_490  # disputeAssertion, the registry's callback included
DEFAULT_ATTESTATIONS = 10  # how many attestations the gas money should cover


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""  # what to do about a warning or failure

    @property
    def line(self) -> str:
        return f"{self.detail}; {self.fix}" if self.fix else self.detail


def passed(name: str, detail: str) -> Finding:
    return Finding(name, "pass", detail)


def failed(name: str, detail: str, fix: str = "") -> Finding:
    return Finding(name, "fail", detail, fix)


def warned(name: str, detail: str, fix: str = "") -> Finding:
    return Finding(name, "warn", detail, fix)


def diagnose(
    network: str | None = None,
    *,
    config: Config | None = None,
    account: str | None = None,
    attestations: int = DEFAULT_ATTESTATIONS,
    prompt: Callable[[str], str] | None = None,
) -> list[Finding]:
    """Every check for `network` (default: the config's), in the order a user fixes them."""
    from attest.accounts import load_account

    config = config or load_config()
    net = config.resolve_network(network or config.defaults.network)
    found: list[Finding] = storage_checks(config)
    ctx: ChainContext | None = None
    try:
        ctx = connect(net.name, config=config, start_devnet=False)
        found.append(passed("rpc", f"{net.name} serves chain {net.chain_id} (block {ctx.w3.eth.block_number})"))
    except AttestError as err:
        found.append(failed("rpc", str(err)))
    token: Token | None = None
    oov3_ok = False
    if ctx is not None:
        found.append(oov3_code(ctx))
        oov3_ok = found[-1].status != "fail"
        if oov3_ok:
            token = _uma_checks(ctx, found)
            found.append(registry(ctx))
    try:
        loaded = load_account(account, net.name, default=config.defaults.account, prompt=prompt)
    except AttestError as err:
        found.append(failed("account", str(err)))
    else:
        found.append(passed("account", f"{loaded.address}: {_key_source(loaded.label, loaded.source)}"))
        if loaded.warning:
            found.append(warned("account", loaded.warning))
        if ctx is not None and oov3_ok:
            approve = _approve_gas(ctx, token, loaded.address) if token is not None else 0
            gas = (ASSERT_GAS + SETTLE_GAS + approve) * attestations
            found.append(gas_money(ctx, loaded.address, gas, f"{attestations} attestations"))
        if ctx is not None and token is not None:
            found.append(bond_money(ctx, token, loaded.address, _bond(ctx, token)))
    found += ipfs_remotes(config, net.name)
    found.append(llm_key(config))
    if ctx is not None and token is not None:
        found += disputer_budgets(ctx, config, token, prompt)
    return found


def storage_checks(config: Config) -> list[Finding]:
    """With `[storage] url` set: the server answers, the ledger's and deploy log's schemas are current, and this
    user may write. Nothing is migrated or kept."""
    if config.storage.url is None:
        return []
    from attest.ledger import SCHEMA_VERSIONS
    from attest.storage.postgres import inspect

    try:
        rows = inspect(Postgres(config.storage.url), SCHEMA_VERSIONS)
    except AttestError as err:
        return [failed("database", str(err))]
    return [Finding(name, cast(Status, status), line) for name, status, line in rows]


def _key_source(label: str, source: str) -> str:
    if source == "dev":
        return f"{label}, a public devnet key"
    if source == "env":
        return f"the raw key in {label.removeprefix('env:')}"
    variables = (f"APE_ACCOUNTS_{label}_PASSPHRASE", "ATTEST_PASSPHRASE")
    given = next((v for v in variables if os.environ.get(v)), None)
    return f"keystore {label}, passphrase from {given or 'the prompt'}"


# -- the chain -----------------------------------------------------------------------------------------------
def oov3_code(ctx: ChainContext) -> Finding:
    """OOv3 has code, and the code answers as OOv3 does (another contract's would fail every later call)."""
    try:
        ctx.require_oov3()
    except AttestError as err:
        return failed("oov3", str(err))
    try:
        ctx.oov3.default_currency()
        liveness = ctx.oov3.default_liveness()
    except Exception as err:  # reverts, empty or undecodable answers: the same fix for each
        return failed(
            "oov3",
            f"the contract at {ctx.oov3.address} does not answer as UMA's OptimisticOracleV3 ({type(err).__name__})",
            f"point [networks.{ctx.network.name}] oov3 at UMA's OptimisticOracleV3 on this chain",
        )
    return passed("oov3", f"OptimisticOracleV3 at {ctx.oov3.address} (default liveness {liveness} s)")


def _uma_checks(ctx: ChainContext, found: list[Finding]) -> Token | None:
    """OOv3's cache of UMA's parameters, the identifier and the bond currency; the currency when it can bond."""
    name = ctx.network.name
    identifier = ctx.identifier()
    try:
        currency = ctx.currency()
        token = Token(ctx.w3, currency)
        label = f"{token.symbol} ({currency}, {token.decimals} decimals)"
    except Exception as err:  # an address that is no ERC-20 fails its calls in several ways
        found.append(
            failed(
                "currency",
                f"the bond currency cannot be read ({type(err).__name__})",
                f"set [networks.{name}] currency to an ERC-20 UMA whitelists",
            )
        )
        return None
    if ctx.oov3.is_identifier_supported(identifier):
        found.append(passed("identifier", f"{identifier} is supported by UMA's IdentifierWhitelist"))
    else:
        found.append(
            failed(
                "identifier",
                f"{identifier} is not supported on {name}",
                f"set [networks.{name}] identifier (ASSERT_TRUTH2 where UMA supports it)",
            )
        )
    if not ctx.oov3.is_currency_whitelisted(currency):
        found.append(
            failed(
                "currency",
                f"{label} is not on UMA's collateral whitelist",
                f"set [networks.{name}] currency to a whitelisted token",
            )
        )
        return None
    minimum = ctx.oov3.minimum_bond(currency)
    found.append(passed("currency", f"{label} is whitelisted; minimum bond {token.show(minimum)}"))
    if ctx.oov3.cache_is_stale(identifier, currency):
        found.append(
            warned(
                "uma params",
                "OOv3's cached whitelist or final fee is out of date (syncUmaParams needed)",
                "nothing to do: the next `attest ask` sends syncUmaParams first, for its gas",
            )
        )
    else:
        found.append(passed("uma params", "OOv3's cached identifier, whitelist and final fee are in sync"))
    return token


def registry(ctx: ChainContext, *, asks: bool = True) -> Finding:
    """Our registry exists for this OOv3 and, for `asks`, counts the liveness they use."""
    name = ctx.network.name
    try:
        info = read_registry(ctx.w3, ctx.require_registry())
    except AttestError as err:
        return failed("registry", str(err))
    if info.oracle != ctx.oov3.address:
        return failed(
            "registry",
            f"the registry {info.address} serves the OOv3 at {info.oracle}, not {ctx.oov3.address}",
            f"deploy one for it (attest registry deploy --network {name} --force) and set [networks.{name}] registry",
        )
    if not asks:
        return passed("registry", f"AttestationRegistry at {info.address} for this OOv3")
    liveness = ctx.settings.liveness or ctx.oov3.default_liveness()
    detail = f"AttestationRegistry at {info.address}, minimum liveness {info.min_liveness} s"
    if liveness < info.min_liveness:
        return failed(
            "registry",
            f"{detail}, but asks would use a liveness of {liveness} s",
            f"set [networks.{name}] liveness = {info.min_liveness} or more",
        )
    floor = DEVNET_MIN_LIVENESS if name == "local" else ctx.network.default_min_liveness
    if info.min_liveness < floor:
        return warned(
            "registry",
            f"{detail}: below {floor} s, a watcher may not dispute a wrong answer in time",
            f"deploy one with --min-liveness {floor} (attest registry deploy --force) and set it as registry",
        )
    return passed("registry", f"{detail}; asks use {liveness} s")


def _fee_per_gas(ctx: ChainContext) -> int:
    """What a transaction may pay per gas now, priced as the sender prices it: tip plus twice the base fee."""
    base = ctx.w3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:
        return int(ctx.w3.eth.gas_price)
    return int(ctx.w3.eth.max_priority_fee) + 2 * int(base)


def _approve_gas(ctx: ChainContext, token: Token, owner: str) -> int:
    if ctx.settings.standing_allowance:
        return 0
    return int(token.approve_call(ctx.oov3.address, 1).estimate_gas({"from": Web3.to_checksum_address(owner)}))


def gas_money(ctx: ChainContext, owner: str, gas: int, what: str) -> Finding:
    """The account can pay `gas` (plus the network's margin) at today's fees."""
    from attest.flow.registry import native

    gas = gas * (100 + ctx.settings.gas_margin_pct) // 100
    fee = _fee_per_gas(ctx)
    needed, balance = gas * fee, int(ctx.w3.eth.get_balance(Web3.to_checksum_address(owner)))
    symbol = ctx.network.native_symbol
    price = f"{gas:,} gas at {fee / 1e9:g} gwei"
    detail = f"{owner} holds {native(balance, symbol)}; {what} may cost {native(needed, symbol)} ({price})"
    if balance < needed:
        return failed("gas", detail, f"send {native(needed - balance, symbol)} or more to {owner}")
    return passed("gas", detail)


def _bond(ctx: ChainContext, token: Token) -> int:
    wanted = ctx.settings.bond
    return token.units(wanted) if wanted is not None else ctx.oov3.minimum_bond(token.address)


def bond_money(ctx: ChainContext, token: Token, owner: str, bond: int) -> Finding:
    balance = token.balance(owner)
    detail = f"{owner} holds {token.show(balance)}; a bond is {token.show(bond)}"
    if balance < bond:
        return failed("bond", detail, f"send at least {token.show(bond - balance)} to {owner}")
    return passed("bond", f"{detail} ({balance // bond} bonds)")


# -- off the chain -------------------------------------------------------------------------------------------
def ipfs_remotes(config: Config, network: str) -> list[Finding]:
    """Every configured remote answers (a pinning service accepts its token); off the devnet, one must exist."""
    from attest.claim import rules_cid
    from attest.ipfs.cid import CID
    from attest.ipfs.gateway import Gateway
    from attest.ipfs.kubo import KuboStore
    from attest.ipfs.pinning import PinningService

    ipfs = config.ipfs_for(network)
    probe = CID.parse(rules_cid(ipfs.cid_version))
    found: list[Finding] = []
    if ipfs.kubo_api:
        try:
            has = KuboStore(ipfs.kubo_api, timeout_s=ipfs.timeout_s).has(probe)
            found.append(
                passed("ipfs", f"Kubo API {ipfs.kubo_api} answers (rules document {'held' if has else 'not held yet'})")
            )
        except AttestError as err:
            found.append(failed("ipfs", f"Kubo API {ipfs.kubo_api}: {err}"))
    for remote in ipfs.pinning:
        try:
            service = PinningService(
                remote.endpoint, remote.token(), timeout_s=ipfs.timeout_s, token_env=remote.token_env
            )
            service.list_pins("pinned", limit=1)
            found.append(passed("ipfs", f"pinning service {remote.name} accepts the token in {remote.token_env}"))
        except AttestError as err:
            found.append(failed("ipfs", f"pinning service {remote.name}: {err}"))
    for url in ipfs.gateways:
        try:
            has = Gateway(url, timeout_s=ipfs.timeout_s).has(probe)
        except AttestError as err:
            found.append(failed("ipfs", f"gateway {url}: {err}", "remove it from [ipfs] gateways"))
            continue
        if has:
            found.append(passed("ipfs", f"gateway {url} serves the rules document"))
        else:
            found.append(
                warned(
                    "ipfs",
                    f"gateway {url} did not serve the rules document within a few seconds",
                    "check the URL; a gateway finds new content only once a node provides it",
                )
            )
    if not ipfs.kubo_api and not ipfs.pinning:
        if network == "local":
            found.append(passed("ipfs", "the local blockstore (enough on the devnet)"))
        else:
            found.append(
                failed(
                    "ipfs",
                    f"no IPFS remote for {network}: records would stay on this machine, where voters cannot read them",
                    "set [ipfs] kubo_api or add an [[ipfs.pinning]] service",
                )
            )
    return found


def llm_key(config: Config) -> Finding:
    from attest.llm.registry import AUTO, default_provider_name, provider_spec

    llm = config.llm
    name = default_provider_name() if llm.provider == AUTO else llm.provider
    spec = provider_spec(name)
    if spec.key_env is None:
        return passed("llm", f"{name}: offline, no key needed")
    variable = llm.key_env or spec.key_env
    if llm.base_url is not None and llm.key_env is None:
        return passed("llm", f"{name} at {llm.base_url} (a local server may need no key)")
    if not os.environ.get(variable):
        return failed("llm", f"[llm] provider {name} needs a key in {variable}, which is not set", f"export {variable}")
    return passed("llm", f"{name}: key present in {variable}")


def disputer_budgets(
    ctx: ChainContext, config: Config, token: Token, prompt: Callable[[str], str] | None
) -> list[Finding]:
    """The [disputer] table's bond limits against the oracle's minimum bond and the disputer account's money."""
    from attest.accounts import load_account

    table = config.disputer
    spec = table.get("account")
    if not table and ctx.network.name != "local":
        return [passed("disputer", "no [disputer] table: no disputer to check")]
    try:
        loaded = load_account(
            str(spec) if spec else ("dev:2" if ctx.network.name == "local" else None), ctx.network.name, prompt=prompt
        )
    except AttestError as err:
        return [failed("disputer", f"the disputer's account: {err}")]
    limits = {key: _amount(token, table.get(key)) for key in ("max_bond_per_dispute", "total_budget")}
    minimum = ctx.oov3.minimum_bond(token.address)
    balance = token.balance(loaded.address)
    found = [gas_money(ctx, loaded.address, DISPUTE_GAS, "a dispute")]
    found[-1] = Finding("disputer gas", found[-1].status, found[-1].detail, found[-1].fix)
    per, total = limits["max_bond_per_dispute"], limits["total_budget"]
    if per is not None and per < minimum:
        found.append(
            failed(
                "disputer",
                f"max_bond_per_dispute {token.show(per)} is below the minimum bond "
                f"{token.show(minimum)}: it could never dispute",
                "raise [disputer] max_bond_per_dispute",
            )
        )
    elif balance < minimum:
        found.append(
            failed(
                "disputer",
                f"{loaded.address} holds {token.show(balance)}, less than one bond ({token.show(minimum)})",
                f"send {token.show(minimum - balance)} or more to it",
            )
        )
    elif total is not None and total > balance:
        found.append(
            warned(
                "disputer",
                f"total_budget {token.show(total)} is more than {loaded.address} holds ({token.show(balance)})",
                "fund it, or lower [disputer] total_budget",
            )
        )
    else:
        found.append(
            passed(
                "disputer",
                f"{loaded.address} holds {token.show(balance)}: "
                f"{balance // max(per or minimum, minimum)} disputes within its limits",
            )
        )
    return found


def _amount(token: Token, value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(Decimal(str(value)) * (Decimal(10) ** token.decimals))
    except InvalidOperation:
        return None  # disputer.config refuses it with its own message when the disputer starts
