//! The command line. The command shapes are a contract (scripts and docs depend on them):
//! add options, never rename or remove them.

use crate::client::DEFAULT_NODE_URL;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// govledger: write, query, prove, verify and audit records of a govledger network.
#[derive(Debug, Parser)]
#[command(
    name = "govledger",
    version,
    about = "govledger client: write, query, prove, verify and audit government records",
    after_help = concat!(
        "Examples:
  govledger keys new --out clerk.key
  govledger testnet init --validators 4 --out ./testnet
  export GOVLEDGER_NODE=http://127.0.0.1:8080 GOVLEDGER_KEY=clerk.key
  govledger anchor minutes.pdf --label \"council minutes 2026-03\" --wait
  govledger approval issue --id BP-2026-001 --kind building-permit --subject ACME-LTD \\
      --decision granted --document permit.pdf --wait
  govledger query approval BP-2026-001
  govledger proof 5c1e… --out proof.json
  govledger verify proof.json --genesis genesis.json --file permit.pdf
  govledger verify status.json --genesis genesis.json --max-age 1h
  govledger checkpoint --out cp.json
  govledger audit --genesis genesis.json --checkpoint cp.json
  govledger consistency --genesis genesis.json cp-old.json cp-new.json --proof old-new.json

Environment: GOVLEDGER_NODE (node URL, default http://127.0.0.1:8080), GOVLEDGER_KEY (key file).

",
        exit_codes_text!()
    )
)]
pub struct Cli {
    /// Print JSON (for scripts) instead of text. Errors go to stderr, as JSON too.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and inspect key files.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Set up a local multi-validator network.
    #[command(subcommand)]
    Testnet(TestnetCmd),
    /// Anchor a document: record its blake3 hash (computed locally; the file is not sent).
    #[command(
        after_help = "Example:\n  govledger anchor minutes.pdf --label \"council minutes\" --wait"
    )]
    Anchor(AnchorArgs),
    /// Issue, amend or revoke approvals (permits, licences, certificates, decisions).
    #[command(subcommand)]
    Approval(ApprovalCmd),
    /// Register, transfer, encumber and release land titles.
    #[command(subcommand)]
    Land(LandCmd),
    /// Publish the department's information resources in the data catalogue.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Log data-access events; derive citizen pseudonyms.
    #[command(subcommand)]
    Access(AccessCmd),
    /// Propose and vote on membership, role and validator changes.
    #[command(subcommand)]
    Governance(GovernanceCmd),
    /// Read records, blocks and accounts (public; no key needed).
    #[command(subcommand)]
    Query(QueryCmd),
    /// Download the proof bundle of a record.
    #[command(after_help = "Example:\n  govledger proof 5c1e…(64 hex digits) --out proof.json")]
    Proof(ProofArgs),
    /// Verify a proof bundle offline against a genesis file (no network at all).
    #[command(after_help = concat!(
        "Examples:
  govledger verify proof.json --genesis genesis.json
  govledger verify proof.json --genesis genesis.json --file permit.pdf

Reads record bundles (version 1, from `govledger proof`) and status bundles (version 2,
from `govledger status --out`). Exit code 0 only when the bundle is valid (and the document
matches; for a status bundle: what it proves is in force); 8 when a status bundle is valid
but proves an approval revoked, expired, not yet valid or absent (or a parcel, resource,
member key … absent, a key removed); 4 when a step fails, with the step named: genesis,
record content, header, inclusion, validator-set change, commit certificate, document
hash, state proof, history, age (--max-age), or bundle format.

",
        exit_codes_text!()
    ))]
    Verify(VerifyArgs),
    /// Fetch and verify, in one step, what is true now: an approval's validity, a parcel's
    /// title, a citizen's data accesses, a member key, the validators.
    #[command(after_help = concat!(
        "Examples:
  govledger status approval BP-2026-000123 --genesis genesis.json
  govledger status parcel 310115-001-0042 --genesis genesis.json --all --out title.json
  govledger status access 3f2a…(64 hex digits, the citizen's pseudonym) --genesis genesis.json --all
  govledger status member 9c41…(64 hex digits) --genesis genesis.json --max-age 10m

Nothing the node says is trusted: the bundle is verified against the genesis file as
`govledger verify` would (state proofs against a certified header; each history record
with its inclusion proof; the history proven complete when it starts at record 0).
Exit 0 when valid and in force, 8 when valid but not in force, 4 when it does not verify.

",
        exit_codes_text!()
    ))]
    Status(StatusArgs),
    /// Save the node's latest signed checkpoint (for a later `audit --checkpoint`).
    #[command(after_help = "Example:\n  govledger checkpoint --out cp-2026-03-01.json")]
    Checkpoint(CheckpointArgs),
    /// Download the whole chain and re-verify every block from genesis.
    #[command(after_help = concat!(
        "Examples:
  govledger audit --genesis genesis.json
  govledger audit --genesis genesis.json --checkpoint cp-2026-03-01.json --json

Checks every header link, every commit certificate against the validator set in force,
every transaction signature, and replays the state machine with every permission rule,
comparing the tx root, log root, state root and validator hashes of each header. With a
checkpoint: the checkpoint verifies, the chain contains exactly its block, and the node's
consistency proof from it to the tip verifies. Exit 0 when all pass, 5 on a mismatch.

",
        exit_codes_text!()
    ))]
    Audit(AuditArgs),
    /// Check offline that a later saved checkpoint extends an earlier one, or prove a fork.
    #[command(after_help = concat!(
        "Examples:
  govledger consistency --genesis genesis.json cp-2026-03-01.json cp-2026-06-01.json \\
      --node http://127.0.0.1:8080 --out proof-03-06.json
  govledger consistency --genesis genesis.json cp-2026-03-01.json cp-2026-06-01.json \\
      --proof proof-03-06.json --json

Both checkpoints are verified against the genesis (either order: the lower height is the
older). Checkpoints of the same block are identical. Two different certified blocks at one
height, a later header with a smaller history log, or two logs of one size with different
roots are a CONFLICT: proof that the chain was forked. Otherwise the RFC 9162 consistency
proof between the two log sizes must verify against both certified roots: from --proof
(offline, no network at all) or fetched from --node (not trusted). --out saves a checked
proof for a later offline run. Exit 0 when consistent or identical; 5 on a conflict, or
when the proof does not verify (which alone proves nothing about the chain); 4 when a
checkpoint or the proof file does not verify or is malformed.

",
        exit_codes_text!()
    ))]
    Consistency(ConsistencyArgs),
    /// Load-test a running network: offered and committed tx/s, finality latency.
    #[command(after_help = concat!(
        "Examples:
  govledger bench --nodes http://127.0.0.1:27080,http://127.0.0.1:27081 --keys testnet/clients \\
      --rate 2000 --duration 60 --warmup 10
  govledger bench --nodes URL,URL,URL,URL --keys testnet/clients --max --duration 60 --json
  govledger bench --nodes URL --keys DIR --rate 500 --duration 30 --mix approvals=2,land=1,governance=1 \\
      --acks-out acked.txt

Each key file in --keys is one signer with its own nonce sequence; signers are spread over
the nodes (signer i submits to node i mod n) and each sends its transactions in nonce order
through POST /v1/txs/batch. Transactions are signed before the clock starts. Commits are
tracked on the first node: finality latency is the time from submission (the scheduled time
in open loop) until the transaction's block is seen there. Rates count the window after the
warm-up only. With access events in the mix, each signer first registers (and waits for)
one catalogue resource.

--mix takes weights in the order approvals:land:access:anchor[:catalog:governance]
(e.g. 1:1:1:1, the default) or kinds by name (approvals=3,land=1,governance=1). land
registers parcels and now and then transfers one registered earlier in the run;
governance proposes adding a department and never votes.

",
        exit_codes_text!()
    ))]
    Bench(BenchArgs),
    /// Measure proof bundles served over HTTP per second, and offline verification.
    #[command(after_help = concat!(
        "Examples:
  govledger bench --nodes URL,... --keys DIR --max --duration 30 --acks-out acks.txt
  govledger bench-proofs --nodes http://127.0.0.1:29100 --ids acks.txt --duration 20 \\
      --concurrency 8 --genesis testnet/local/genesis.json

Ids are committed record ids, one hex per line (what `bench --acks-out` writes). The node's
per-client API rate limit ([api] rate_limit_per_sec, default 2000) applies: raise it on the
measured node, or answers are counted as rate limited. With --genesis, the bundles received
are then verified offline, one at a time and in batches, and every one must verify.

",
        exit_codes_text!()
    ))]
    BenchProofs(BenchProofsArgs),
}

/// `--node`.
#[derive(Debug, Clone, Args)]
pub struct NodeOpt {
    /// The node's API URL.
    #[arg(long, env = "GOVLEDGER_NODE", default_value = DEFAULT_NODE_URL, value_name = "URL")]
    pub node: String,
}

/// Options of every writing command.
#[derive(Debug, Clone, Args)]
pub struct WriteOpts {
    #[command(flatten)]
    /// The node.
    pub node: NodeOpt,
    /// The signing key file.
    #[arg(long, env = "GOVLEDGER_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Wait until the record is committed and print its height and leaf index.
    #[arg(long)]
    pub wait: bool,
    /// How long the transaction stays valid (units ms, s, m, h, d; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration_ms)]
    pub ttl: u64,
}

/// Parses `90s`, `30m`, `1h`, `2d`, `500ms` or a bare number of seconds into ms.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 30m, 1h"))?;
    let factor = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h, d)")),
    };
    let ms = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too long"))?;
    if ms == 0 {
        return Err("a duration must be positive".into());
    }
    Ok(ms)
}

/// Parses a time (ms since the epoch or RFC 3339).
pub fn parse_time_arg(s: &str) -> Result<u64, String> {
    crate::time::parse_time(s)
}

/// `--after CURSOR --limit N`.
#[derive(Debug, Clone, Args)]
pub struct PageOpts {
    /// Continue after this cursor (the `next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<u64>,
    /// Records per page (the node caps it at 1000).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// `govledger keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a new ed25519 key file (mode 0600; never overwrites).
    #[command(after_help = "Example:\n  govledger keys new --out clerk.key")]
    New {
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show a key file's public key and libp2p peer id.
    #[command(after_help = "Example:\n  govledger keys show clerk.key")]
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// `govledger testnet …`.
#[derive(Debug, Subcommand)]
pub enum TestnetCmd {
    /// Write genesis.json, one folder per node (config.toml, node.key) and one client key
    /// per department.
    #[command(
        after_help = "Example:\n  govledger testnet init --validators 4 --out ./testnet\n  govledger-node --config ./testnet/node-1/config.toml"
    )]
    Init(TestnetInitArgs),
}

/// `testnet init`.
#[derive(Debug, Args)]
pub struct TestnetInitArgs {
    /// Number of validators (one department each).
    #[arg(long, value_name = "N")]
    pub validators: u32,
    /// Output folder (created; must be empty if it exists).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Chain id.
    #[arg(long, value_name = "ID", default_value = "govledger-testnet")]
    pub chain_id: String,
    /// P2P port of node-1; node-i uses P + i - 1.
    #[arg(long, value_name = "P", default_value_t = 26656)]
    pub base_port: u16,
    /// API port of node-1; node-i uses P + i - 1.
    #[arg(long, value_name = "P", default_value_t = 8080)]
    pub api_base_port: u16,
    /// IPv4 address the nodes reach each other (and clients reach the APIs) at.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub host: std::net::Ipv4Addr,
}

/// `anchor FILE`.
#[derive(Debug, Args)]
pub struct AnchorArgs {
    /// The document (hashed locally, streaming).
    pub file: PathBuf,
    /// A public label (keep personal data out of it).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub label: String,
    #[command(flatten)]
    /// Writing options.
    pub w: WriteOpts,
}

/// An approval's decision.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecisionArg {
    /// Granted as applied for.
    Granted,
    /// Granted with conditions.
    Conditional,
    /// Refused.
    Refused,
}

impl From<DecisionArg> for ledger::tx::Decision {
    fn from(d: DecisionArg) -> Self {
        match d {
            DecisionArg::Granted => ledger::tx::Decision::Granted,
            DecisionArg::Conditional => ledger::tx::Decision::Conditional,
            DecisionArg::Refused => ledger::tx::Decision::Refused,
        }
    }
}

/// `--document FILE|HASH` or `--document-hash HASH`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DocumentOpt {
    /// The document: a file (hashed locally with blake3) or its blake3 hash.
    #[arg(long, value_name = "FILE|HASH")]
    pub document: Option<String>,
    /// The document's blake3 hash (64 hex digits).
    #[arg(long, value_name = "HASH")]
    pub document_hash: Option<String>,
}

/// `govledger approval …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalCmd {
    /// Issue an approval.
    #[command(
        after_help = "Example:\n  govledger approval issue --id BP-2026-001 --kind building-permit --subject ACME-LTD \\\n      --decision granted --document permit.pdf --valid-until 2027-03-01 --wait"
    )]
    Issue {
        /// Approval id (unique; chosen by the department).
        #[arg(long)]
        id: String,
        /// Kind, e.g. building-permit, business-licence.
        #[arg(long)]
        kind: String,
        /// The party it is about.
        #[arg(long)]
        subject: String,
        /// The decision.
        #[arg(long, value_enum)]
        decision: DecisionArg,
        #[command(flatten)]
        /// The decision document.
        doc: DocumentOpt,
        /// Start of validity (ms or RFC 3339; default now).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        valid_from: Option<u64>,
        /// End of validity (ms or RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        valid_until: Option<u64>,
        /// Note (conditions, summary).
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Amend an approval (issuing department only).
    #[command(
        after_help = "Example:\n  govledger approval amend --id BP-2026-001 --decision conditional --document permit-v2.pdf \\\n      --reason \"height limit added\" --wait"
    )]
    Amend {
        /// Approval id.
        #[arg(long)]
        id: String,
        /// The new decision.
        #[arg(long, value_enum)]
        decision: DecisionArg,
        #[command(flatten)]
        /// The amended document.
        doc: DocumentOpt,
        /// New end of validity (ms or RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        valid_until: Option<u64>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Revoke an approval (issuing department only; it stays in history).
    #[command(
        after_help = "Example:\n  govledger approval revoke --id BP-2026-001 --reason \"obtained by fraud\" --wait"
    )]
    Revoke {
        /// Approval id.
        #[arg(long)]
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
}

/// The kind of an encumbrance.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncumbranceArg {
    /// A mortgage.
    Mortgage,
    /// A lien.
    Lien,
    /// A court freeze: blocks transfers until released.
    #[value(name = "court_freeze", alias = "court-freeze")]
    CourtFreeze,
}

impl From<EncumbranceArg> for ledger::tx::EncumbranceKind {
    fn from(k: EncumbranceArg) -> Self {
        match k {
            EncumbranceArg::Mortgage => ledger::tx::EncumbranceKind::Mortgage,
            EncumbranceArg::Lien => ledger::tx::EncumbranceKind::Lien,
            EncumbranceArg::CourtFreeze => ledger::tx::EncumbranceKind::CourtFreeze,
        }
    }
}

/// `--deed FILE|HASH` or `--deed-hash HASH`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DeedOpt {
    /// The deed: a file (hashed locally) or its blake3 hash.
    #[arg(long, value_name = "FILE|HASH")]
    pub deed: Option<String>,
    /// The deed's blake3 hash.
    #[arg(long, value_name = "HASH")]
    pub deed_hash: Option<String>,
}

/// `govledger land …`.
#[derive(Debug, Subcommand)]
pub enum LandCmd {
    /// Register a parcel's first title.
    #[command(
        after_help = "Example:\n  govledger land register --parcel 110105-001-0042 --owner \"Alice Zhang\" --document title.pdf --wait"
    )]
    Register {
        /// Cadastral parcel id.
        #[arg(long)]
        parcel: String,
        /// The owning party.
        #[arg(long)]
        owner: String,
        #[command(flatten)]
        /// The title document.
        doc: DocumentOpt,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Transfer a title from its current owner.
    #[command(
        after_help = "Example:\n  govledger land transfer --parcel 110105-001-0042 --from \"Alice Zhang\" --to \"Bob Li\" --deed deed.pdf --wait"
    )]
    Transfer {
        /// The parcel.
        #[arg(long)]
        parcel: String,
        /// The current owner.
        #[arg(long)]
        from: String,
        /// The new owner.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        /// The deed.
        deed: DeedOpt,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Encumber a parcel (mortgage, lien, court freeze).
    #[command(
        after_help = "Example:\n  govledger land encumber --parcel 110105-001-0042 --id M-1 --kind mortgage --holder \"City Bank\" --document mortgage.pdf"
    )]
    Encumber {
        /// The parcel.
        #[arg(long)]
        parcel: String,
        /// Encumbrance id (unique within the parcel).
        #[arg(long)]
        id: String,
        /// Its kind.
        #[arg(long, value_enum)]
        kind: EncumbranceArg,
        /// The bank, creditor or court.
        #[arg(long)]
        holder: String,
        #[command(flatten)]
        /// The instrument.
        doc: DocumentOpt,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Release an encumbrance.
    #[command(
        after_help = "Example:\n  govledger land release --parcel 110105-001-0042 --id M-1 --document release.pdf"
    )]
    Release {
        /// The parcel.
        #[arg(long)]
        parcel: String,
        /// The encumbrance id.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        /// The release instrument.
        doc: DocumentOpt,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
}

/// Sharing type of a resource.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SharingArg {
    /// Any department may access it.
    Unconditional,
    /// Other departments need a legal basis.
    Conditional,
    /// Only the owning department.
    #[value(name = "not_shared", alias = "not-shared")]
    NotShared,
}

impl From<SharingArg> for ledger::tx::SharingType {
    fn from(s: SharingArg) -> Self {
        match s {
            SharingArg::Unconditional => ledger::tx::SharingType::Unconditional,
            SharingArg::Conditional => ledger::tx::SharingType::Conditional,
            SharingArg::NotShared => ledger::tx::SharingType::NotShared,
        }
    }
}

/// Open attribute of a resource.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OpenArg {
    /// Open data.
    Open,
    /// Open under conditions.
    Conditional,
    /// Not open.
    Closed,
}

impl From<OpenArg> for ledger::tx::OpenAttribute {
    fn from(o: OpenArg) -> Self {
        match o {
            OpenArg::Open => ledger::tx::OpenAttribute::Open,
            OpenArg::Conditional => ledger::tx::OpenAttribute::Conditional,
            OpenArg::Closed => ledger::tx::OpenAttribute::Closed,
        }
    }
}

/// A catalogue entry's fields.
#[derive(Debug, Clone, Args)]
pub struct CatalogEntryArgs {
    /// Catalogue identifier (unique across the ledger).
    #[arg(long)]
    pub id: String,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// Sharing type.
    #[arg(long, value_enum)]
    pub sharing: SharingArg,
    /// Open attribute.
    #[arg(long, value_enum)]
    pub open: OpenArg,
    /// Format, e.g. database, csv, api.
    #[arg(long)]
    pub format: String,
    /// Online resource link.
    #[arg(long, default_value = "")]
    pub link: String,
    #[command(flatten)]
    /// Writing options.
    pub w: WriteOpts,
}

/// `govledger catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Register an information resource of the signer's department.
    #[command(
        after_help = "Example:\n  govledger catalog register --id RES-HOUSEHOLD --name \"Household register\" \\\n      --sharing conditional --open closed --format database --link https://data.example/household"
    )]
    Register(CatalogEntryArgs),
    /// Replace the department's catalogue entry (every field).
    #[command(
        after_help = "Example:\n  govledger catalog update --id RES-HOUSEHOLD --name \"Household register\" \\\n      --sharing unconditional --open closed --format api --link https://data.example/household/v2"
    )]
    Update(CatalogEntryArgs),
}

/// `govledger access …`.
#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Log that the signer's department accessed a citizen's data.
    #[command(
        after_help = "Example:\n  govledger access log --subject $(govledger access pseudonym --citizen-id 110101199001011234 --secret-key-file dept.secret) \\\n      --resource RES-HOUSEHOLD --purpose \"housing subsidy check\" --legal-basis \"Housing Regulation art. 12\""
    )]
    Log {
        /// The citizen's pseudonym (64 hex digits; see `access pseudonym`).
        #[arg(long, value_name = "PSEUDONYM")]
        subject: String,
        /// The catalogue entry accessed.
        #[arg(long, value_name = "ID")]
        resource: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        purpose: String,
        /// The law or case that allows it (required for conditionally shared resources).
        #[arg(long, value_name = "TEXT", default_value = "")]
        legal_basis: String,
        /// When the access happened (ms or RFC 3339; default now).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        at: Option<u64>,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
    /// Derive a citizen's pseudonym: blake3 keyed hash of the citizen id under the
    /// departments' shared 32-byte secret (offline).
    #[command(
        after_help = "The pseudonym is blake3::keyed_hash(secret, citizen_id): the 32-byte secret shared by the\ndepartments (a file of 64 hex digits, or 32 raw bytes) keys blake3 over the citizen id's UTF-8\nbytes exactly as given. Citizens receive their pseudonym and look up `govledger query access\n--subject PSEUDONYM`; without the secret nobody can enumerate citizen ids.\n\nExample:\n  govledger access pseudonym --citizen-id 110101199001011234 --secret-key-file dept.secret"
    )]
    Pseudonym {
        /// The citizen id, hashed exactly as given.
        #[arg(long, value_name = "ID")]
        citizen_id: String,
        /// The shared secret file (64 hex digits or 32 raw bytes).
        #[arg(long, value_name = "FILE")]
        secret_key_file: PathBuf,
    },
}

/// `govledger governance …`.
#[derive(Debug, Subcommand)]
pub enum GovernanceCmd {
    /// Propose a governance action (the proposing department counts as approving).
    #[command(subcommand)]
    Propose(ProposeAction),
    /// Vote on a proposal for the signer's department.
    #[command(
        after_help = "Example:\n  govledger governance vote --proposal 5c1e… --approve --wait"
    )]
    #[command(group(ArgGroup::new("verdict").required(true).args(["approve", "reject"])))]
    Vote {
        /// The proposal's record id.
        #[arg(long, value_name = "ID")]
        proposal: String,
        /// Approve.
        #[arg(long)]
        approve: bool,
        /// Reject.
        #[arg(long)]
        reject: bool,
        #[command(flatten)]
        /// Writing options.
        w: WriteOpts,
    },
}

/// Options of every proposal.
#[derive(Debug, Clone, Args)]
pub struct ProposeCommon {
    /// Why (shown to the voting departments).
    #[arg(long, value_name = "TEXT")]
    pub description: String,
    #[command(flatten)]
    /// Writing options.
    pub w: WriteOpts,
}

/// A governance action.
#[derive(Debug, Subcommand)]
pub enum ProposeAction {
    /// Add a department.
    #[command(
        after_help = "Example:\n  govledger governance propose add-department --id tax-bureau --name \"Tax Bureau\" --description \"joins the network\""
    )]
    AddDepartment {
        /// Department id (a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its weight in governance votes.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Add a member key to a department.
    #[command(
        after_help = "Example:\n  govledger governance propose add-member --member new-clerk.key --department dept-2 \\\n      --roles approvals,anchor --name \"permits desk\" --description \"new clerk\""
    )]
    AddMember {
        /// The key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        member: String,
        /// Its department.
        #[arg(long)]
        department: String,
        /// Its roles, comma-separated (approvals, land_registry, catalog, data_access, anchor,
        /// governance, node).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<ledger::tx::Role>,
        /// A label (person or system).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Remove a member key.
    RemoveMember {
        /// The key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        member: String,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Grant a role to a member key.
    GrantRole {
        /// The key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        member: String,
        /// The role.
        #[arg(long)]
        role: ledger::tx::Role,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Revoke a role from a member key.
    RevokeRole {
        /// The key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        member: String,
        /// The role.
        #[arg(long)]
        role: ledger::tx::Role,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Add a validator (in force two heights after the proposal executes).
    #[command(
        after_help = "Example:\n  govledger governance propose add-validator --validator node-5/node.key --department dept-5 \\\n      --address /ip4/10.0.0.5/tcp/26656 --description \"fifth validator\""
    )]
    AddValidator {
        /// Its consensus key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        validator: String,
        /// Its department.
        #[arg(long)]
        department: String,
        /// Voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// Network address hint (libp2p multiaddr).
        #[arg(long, default_value = "")]
        address: String,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Remove a validator.
    RemoveValidator {
        /// Its consensus key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        validator: String,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
    /// Change a validator's voting power.
    SetValidatorPower {
        /// Its consensus key: a key file or 64 hex digits.
        #[arg(long, value_name = "KEY")]
        validator: String,
        /// The new power.
        #[arg(long)]
        power: u64,
        #[command(flatten)]
        /// Proposal options.
        common: ProposeCommon,
    },
}

/// `govledger query …`.
#[derive(Debug, Subcommand)]
pub enum QueryCmd {
    /// A record by id (transaction hash), committed or pending.
    Tx {
        /// Record id.
        id: String,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// An approval's current form and its history.
    Approval {
        /// Approval id.
        id: String,
        #[command(flatten)]
        /// Paging of the history.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// Approvals about a subject.
    Approvals {
        /// The subject.
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// A parcel's current title (and with --history every record about it).
    Land {
        /// Parcel id.
        parcel: String,
        /// Also show the full history.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        /// Paging of the history.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// The data catalogue, or one entry with its updates and access events.
    Catalog {
        /// Resource id (omit for the whole catalogue).
        id: Option<String>,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// Data-access events about a citizen pseudonym.
    Access {
        /// The pseudonym (64 hex digits).
        #[arg(long, value_name = "PSEUDONYM")]
        subject: String,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// A department's records in a time range.
    Department {
        /// Department id.
        dept: String,
        /// From (ms or RFC 3339, inclusive).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        from: Option<u64>,
        /// To (ms or RFC 3339, inclusive).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        to: Option<u64>,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// Records naming a document (anchors, approvals, land), by file or hash.
    #[command(group(ArgGroup::new("doc").required(true).args(["file", "hash"])))]
    Anchor {
        /// The document (hashed locally).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Its blake3 hash.
        #[arg(long, value_name = "HASH")]
        hash: Option<String>,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// A block by height, or `latest`.
    Block {
        /// Height or `latest`.
        which: String,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// A governance proposal and its votes.
    Proposal {
        /// The proposal's record id.
        id: String,
        #[command(flatten)]
        /// Paging.
        page: PageOpts,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// An account: membership, roles, nonces.
    Account {
        /// A key file or a public key (64 hex digits).
        key: String,
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
    /// The node's status: chain, height, peers, validators.
    Status {
        #[command(flatten)]
        /// The node.
        node: NodeOpt,
    },
}

/// `proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// The record id (transaction hash).
    pub id: String,
    /// Where to save the bundle (default: print it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// The node.
    pub node: NodeOpt,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The proof bundle (JSON).
    pub bundle: PathBuf,
    /// The genesis file you trust (its hash is the trust root).
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// Also check that this document is the one the record names.
    #[arg(long, value_name = "DOCUMENT")]
    pub file: Option<PathBuf>,
    /// Refuse a bundle whose block is older than this (e.g. 10m, 1h, 2d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub max_age: Option<u64>,
}

/// What `status` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusKind {
    /// An approval (permit, licence, certificate, judgment) by id.
    Approval,
    /// A land parcel's current title and its history.
    Parcel,
    /// A catalogue resource, and every access to it.
    Resource,
    /// Every data-access event under a citizen pseudonym (64 hex digits).
    Access,
    /// A department, and every record it signed.
    Department,
    /// A governance proposal (its id, 64 hex digits) and its votes.
    Proposal,
    /// A member key (64 hex digits): department, roles, active or removed.
    Member,
    /// The validator sets in force and scheduled (no id).
    Validators,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// What to look up.
    pub kind: StatusKind,
    /// Its id (none for `validators`).
    pub id: Option<String>,
    /// The genesis file you trust (its hash is the trust root).
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// Fetch every page of the history, so the whole history is proven (up to 20,000
    /// records).
    #[arg(long)]
    pub all: bool,
    /// Save the verified bundle here (verify it again later, offline, with `verify`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Refuse a bundle whose block is older than this (e.g. 10m, 1h, 2d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub max_age: Option<u64>,
    #[command(flatten)]
    /// The node.
    pub node: NodeOpt,
}

/// `checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Where to save it.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A past height instead of the latest.
    #[arg(long, value_name = "H")]
    pub height: Option<u64>,
    #[command(flatten)]
    /// The node.
    pub node: NodeOpt,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The genesis file you trust.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// A checkpoint saved earlier with `govledger checkpoint`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Stop at this height (default: the node's height when the audit starts).
    #[arg(long, value_name = "H")]
    pub to_height: Option<u64>,
    #[command(flatten)]
    /// The node.
    pub node: NodeOpt,
}

/// `consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The genesis file you trust (its hash is the trust root).
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// The earlier checkpoint (from `govledger checkpoint`).
    #[arg(value_name = "OLD.json")]
    pub old: PathBuf,
    /// The later checkpoint (the two may come in either order).
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,
    /// A consistency proof file saved earlier with --out: checked offline, no network at
    /// all (--node is then not used).
    #[arg(long, value_name = "FILE")]
    pub proof: Option<PathBuf>,
    /// Save the proof here once it is checked, to repeat the check offline with --proof.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fetch the proof from this node when no --proof is given (the node is not trusted:
    /// its proof is checked against both certified roots).
    #[arg(long, env = "GOVLEDGER_NODE", value_name = "URL")]
    pub node: Option<String>,
}

/// `bench`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("load").required(true).args(["rate", "max"])))]
pub struct BenchArgs {
    /// Node API URLs, comma-separated. Signer i submits to node i mod n; the first node is
    /// the one whose blocks are tracked.
    #[arg(
        long,
        value_name = "URL,URL,...",
        value_delimiter = ',',
        required = true
    )]
    pub nodes: Vec<String>,
    /// Folder of signer key files (*.key), e.g. the clients/ folder of `testnet init`.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Open loop: offer this many transactions per second, whatever the answers.
    #[arg(long, value_name = "TX_PER_S")]
    pub rate: Option<f64>,
    /// Closed loop: as fast as the cluster commits, at most --inflight in flight.
    #[arg(long)]
    pub max: bool,
    /// The measured window (units ms, s, m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = crate::bench::parse_duration)]
    pub duration: std::time::Duration,
    /// Load before the measured window, not counted.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::bench::parse_duration_or_zero)]
    pub warmup: std::time::Duration,
    /// Record kinds and weights: approvals:land:access:anchor[:catalog:governance] weights,
    /// or kind=weight,...
    #[arg(long, value_name = "MIX", default_value = "1:1:1:1")]
    pub mix: String,
    /// Transactions per POST /v1/txs/batch (at most 10000).
    #[arg(long, value_name = "N", default_value_t = crate::bench::BATCH_DEFAULT)]
    pub batch: usize,
    /// Sender threads (HTTP connections); default one per signer, which is also the most
    /// that helps (a signer's batches go one after the other, in nonce order).
    #[arg(long, value_name = "C")]
    pub concurrency: Option<usize>,
    /// Closed loop: most transactions submitted and not yet seen committed, over all
    /// signers.
    #[arg(long, value_name = "N", default_value_t = crate::bench::INFLIGHT_DEFAULT)]
    pub inflight: usize,
    /// After the load, wait at most this long for transactions in flight; those not seen
    /// committed by then are counted as timed out.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::bench::parse_duration)]
    pub drain: std::time::Duration,
    /// Transactions to sign before the clock starts (default: rate × (warm-up + duration);
    /// closed loop 12,000 per second of the run). More are signed during the load if needed.
    #[arg(long, value_name = "N")]
    pub presign: Option<u64>,
    /// Interval between two polls of the tracked node's status.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = crate::bench::parse_duration)]
    pub poll: std::time::Duration,
    /// Write the id of every transaction seen committed (set-up included), one hex per line.
    #[arg(long, value_name = "FILE")]
    pub acks_out: Option<PathBuf>,
    /// Do not print progress to stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `bench-proofs`.
#[derive(Debug, Args)]
pub struct BenchProofsArgs {
    /// Node API URLs, comma-separated; connection i asks node i mod n.
    #[arg(
        long,
        value_name = "URL,URL,...",
        value_delimiter = ',',
        required = true
    )]
    pub nodes: Vec<String>,
    /// File of committed record ids, one hex per line.
    #[arg(long, value_name = "FILE")]
    pub ids: PathBuf,
    /// The measured window (units ms, s, m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = crate::bench::parse_duration)]
    pub duration: std::time::Duration,
    /// Requests before the measured window, not counted.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::bench::parse_duration_or_zero)]
    pub warmup: std::time::Duration,
    /// Concurrent connections (threads).
    #[arg(long, value_name = "C", default_value_t = 8)]
    pub concurrency: usize,
    /// Verify the bundles received offline against this genesis.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Most bundles verified offline.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub verify_max: usize,
    /// Status bundles (format 2) of the subjects the records name (approvals, parcels,
    /// resources, pseudonyms) instead of the records' own proof bundles.
    #[arg(long)]
    pub status: bool,
    /// Do not print progress to stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("1y").is_err());
        assert!(parse_duration_ms("h").is_err());
    }

    #[test]
    fn contract_shapes_parse() {
        let ok = |line: &str| {
            let args = std::iter::once("govledger").chain(line.split_whitespace());
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{line}: {e}"));
        };
        let h = "ab".repeat(32);
        ok("keys new --out k.key");
        ok("keys show k.key");
        ok("testnet init --validators 4 --out dir --chain-id x --base-port 3000 --host 127.0.0.1");
        ok("anchor f.pdf --label x --node http://h:1 --key k --wait");
        ok(
            "approval issue --id A --kind k --subject s --decision granted --document f --valid-from 2026-01-01 --valid-until 1795000000000 --note n",
        );
        ok(&format!(
            "approval amend --id A --decision refused --document-hash {h} --reason r"
        ));
        ok("approval revoke --id A --reason r");
        ok("land register --parcel P --owner o --document f");
        ok("land transfer --parcel P --from a --to b --deed f");
        ok("land encumber --parcel P --id M --kind court_freeze --holder h --document f");
        ok("land release --parcel P --id M --document f");
        ok(
            "catalog register --id R --name n --sharing not_shared --open closed --format csv --link l",
        );
        ok(
            "catalog update --id R --name n --sharing unconditional --open open --format csv --link l",
        );
        ok(&format!(
            "access log --subject {h} --resource R --purpose p --legal-basis b --at 5"
        ));
        ok("access pseudonym --citizen-id 1 --secret-key-file s");
        ok("governance propose add-department --id d --name n --description x");
        ok(
            "governance propose add-member --member k --department d --roles approvals,anchor --description x",
        );
        ok("governance propose set-validator-power --validator k --power 3 --description x");
        ok(&format!("governance vote --proposal {h} --approve"));
        ok(&format!("governance vote --proposal {h} --reject"));
        ok(&format!("query tx {h}"));
        ok("query approval A --after 3 --limit 10");
        ok("query approvals --subject s");
        ok("query land P --history");
        ok("query catalog");
        ok("query catalog R");
        ok(&format!("query access --subject {h}"));
        ok("query department d --from 2026-01-01 --to 2026-02-01T00:00:00Z");
        ok("query anchor --file f");
        ok(&format!("query anchor --hash {h}"));
        ok("query block latest");
        ok("query block 7");
        ok(&format!("proof {h} --out p.json"));
        ok("verify p.json --genesis g.json --file d");
        ok("checkpoint --out cp.json");
        ok("audit --genesis g.json --checkpoint cp.json --json");
        ok("consistency --genesis g.json old.json new.json");
        ok("consistency old.json new.json --genesis g.json --proof p.json --json");
        ok("consistency --genesis g.json old.json new.json --node http://h:1 --out p.json");
        ok("bench --nodes http://a:1,http://b:2 --keys dir --rate 2000 --duration 60");
        ok(
            "bench-proofs --nodes http://a:1 --ids acks.txt --duration 5 --concurrency 4 --genesis g.json",
        );
        ok(
            "bench --nodes http://a:1 --keys dir --max --duration 1m --mix 1:1:1:1:0:1 --warmup 0 --json --acks-out a.txt --batch 500 --concurrency 2 --inflight 8000 --drain 10s --presign 1000 --poll 50ms --quiet",
        );
        let bad = |line: &str| {
            let args = std::iter::once("govledger").chain(line.split_whitespace());
            assert!(Cli::try_parse_from(args).is_err(), "{line}");
        };
        bad("governance vote --proposal x --approve --reject");
        bad("bench --nodes http://a:1 --keys dir --duration 60");
        bad("bench --nodes http://a:1 --keys dir --rate 5 --max --duration 60");
        bad("approval issue --id A --kind k --subject s --decision granted");
        bad("query anchor");
        bad("consistency --genesis g.json old.json");
        bad("consistency old.json new.json");
        bad("consistency --genesis g.json a.json b.json c.json");
        bad("approval issue --id A --kind k --subject s --decision maybe --document f");
    }
}
