"""The disputer state's tables, as named migrations (attest/storage applies and records them)."""

from __future__ import annotations

from attest.storage import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "checkpoints, assertions, decisions, outbox, votes",
        """
        CREATE TABLE checkpoints(
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY(chain_id, oov3)
        );
        CREATE TABLE checkpoint_history(
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            PRIMARY KEY(chain_id, oov3, block_number)
        );
        CREATE TABLE assertions(
            assertion_id BLOB PRIMARY KEY,
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            tx_hash BLOB NOT NULL,
            log_index INTEGER NOT NULL,
            domain_id BLOB NOT NULL,
            claim BLOB NOT NULL,
            asserter TEXT NOT NULL,
            callback_recipient TEXT NOT NULL,
            escalation_manager TEXT NOT NULL,
            caller TEXT NOT NULL,
            expiration_time INTEGER NOT NULL,
            currency TEXT NOT NULL,
            bond TEXT NOT NULL,
            identifier BLOB NOT NULL,
            is_ours INTEGER NOT NULL,
            seen_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK(status IN ('new', 'evaluated', 'disputed', 'settled', 'gone')),
            disputed_by TEXT,
            disputed_tx BLOB,
            disputed_block INTEGER,
            disputed_block_hash BLOB,
            settled_resolution INTEGER,
            settled_tx BLOB,
            settled_block INTEGER,
            settled_block_hash BLOB
        );
        CREATE INDEX assertions_by_status ON assertions(chain_id, status, is_ours);
        CREATE INDEX assertions_by_block ON assertions(chain_id, oov3, block_number);
        CREATE TABLE decisions(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            assertion_id BLOB NOT NULL UNIQUE REFERENCES assertions(assertion_id),
            created_at TEXT NOT NULL,
            score REAL,
            calibrated REAL,
            rationale TEXT NOT NULL,
            judge TEXT NOT NULL,
            checks TEXT NOT NULL,
            action TEXT NOT NULL CHECK(action IN ('none', 'dispute', 'vote', 'undecided', 'skip')),
            reason TEXT NOT NULL,
            dry_run INTEGER NOT NULL
        );
        CREATE TABLE txs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            assertion_id BLOB NOT NULL,
            kind TEXT NOT NULL CHECK(kind IN ('dispute', 'vote_push', 'commit', 'reveal', 'settle', 'approve')),
            status TEXT NOT NULL CHECK(status IN ('intent', 'signed', 'sent', 'mined', 'failed', 'dropped')),
            sender TEXT,
            nonce INTEGER,
            tx_hash BLOB,
            raw BLOB,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            error TEXT,
            UNIQUE(assertion_id, kind)
        );
        CREATE INDEX txs_by_status ON txs(status);
        CREATE TABLE votes(
            assertion_id BLOB NOT NULL,
            round_id INTEGER NOT NULL,
            request_id BLOB NOT NULL,
            price TEXT NOT NULL,
            salt TEXT NOT NULL,
            phase TEXT NOT NULL CHECK(phase IN ('salted', 'committed', 'revealed')),
            committed_tx BLOB,
            revealed_tx BLOB,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY(assertion_id, round_id)
        );
        """,
    ),
    Migration(
        "superseded decisions: dry-run decisions a real run replaced",
        """
        CREATE TABLE superseded_decisions(
            id INTEGER PRIMARY KEY,
            assertion_id BLOB NOT NULL,
            created_at TEXT NOT NULL,
            score REAL,
            calibrated REAL,
            rationale TEXT NOT NULL,
            judge TEXT NOT NULL,
            checks TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            superseded_at TEXT NOT NULL
        );
        CREATE INDEX superseded_by_assertion ON superseded_decisions(assertion_id)
        """,
    ),
    Migration(
        "chain histories: the genesis hash each chain id is followed on, and each assertion was seen on",
        # A reset devnet keeps its chain id and addresses but starts a new history; rows from before this
        # migration stay NULL until their chain id is first followed.
        """
        CREATE TABLE chains(
            chain_id INTEGER PRIMARY KEY,
            genesis_hash BLOB NOT NULL,
            followed_since TEXT NOT NULL
        );
        ALTER TABLE assertions ADD COLUMN genesis_hash BLOB
        """,
    ),
    Migration(
        "replaced transactions: the earlier signings of a row's nonce, any of which may be the one mined",
        "ALTER TABLE txs ADD COLUMN earlier TEXT",
    ),
    Migration(
        "evidence transactions: a batch dispute's evidence announced on the registry (txs kind 'evidence')",
        # SQLite cannot widen a CHECK in place: the table is copied into one that allows the new kind.
        """
        CREATE TABLE txs_new(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            assertion_id BLOB NOT NULL,
            kind TEXT NOT NULL CHECK(kind IN ('dispute', 'vote_push', 'commit', 'reveal', 'settle', 'approve',
                                              'evidence')),
            status TEXT NOT NULL CHECK(status IN ('intent', 'signed', 'sent', 'mined', 'failed', 'dropped')),
            sender TEXT,
            nonce INTEGER,
            tx_hash BLOB,
            raw BLOB,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            error TEXT,
            earlier TEXT,
            UNIQUE(assertion_id, kind)
        );
        INSERT INTO txs_new(id, assertion_id, kind, status, sender, nonce, tx_hash, raw, attempts, created_at,
                            updated_at, error, earlier)
            SELECT id, assertion_id, kind, status, sender, nonce, tx_hash, raw, attempts, created_at, updated_at,
                   error, earlier FROM txs;
        DROP TABLE txs;
        ALTER TABLE txs_new RENAME TO txs;
        CREATE INDEX txs_by_status ON txs(status)
        """,
    ),
    Migration(
        "judgements: evaluations made by queue workers, per (assertion, sample), until the leader decides",
        """
        CREATE TABLE judgements(
            assertion_id BLOB NOT NULL,
            sample INTEGER NOT NULL,
            evaluation TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY(assertion_id, sample)
        )
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
