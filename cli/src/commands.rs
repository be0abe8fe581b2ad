//! Runs a parsed command line: the glue between the arguments, the library modules and the
//! output. Every command prints text by default and JSON with `--json`.

use crate::args::*;
use crate::audit::{AuditError, AuditOptions, AuditReport, audit};
use crate::client::{NodeClient, path_segment};
use crate::exit::{Exit, LocalError, Reported, UsageError};
use crate::keys::{self, KeyInfo, public_key_arg};
use crate::output::{Output, render, to_json};
use crate::testnet::{self, TestnetOptions};
use crate::time::{format_ms, now_ms};
use crate::verify::{self, Verified};
use crate::write::{self, Writer, Written, document_arg, hash_file, load_key};
use ledger::hash::Hash;
use ledger::tx::*;
use std::io::IsTerminal;
use std::path::Path;

/// Runs the command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Keys(k) => keys_cmd(out, k),
        Command::Testnet(TestnetCmd::Init(a)) => testnet_init(out, a),
        Command::Anchor(a) => {
            let document_hash = hash_file(&a.file)?;
            let body = TxBody::Anchor(Anchor {
                document_hash,
                label: a.label,
            });
            write_body(out, &a.w, body)
        }
        Command::Approval(c) => approval_cmd(out, c),
        Command::Land(c) => land_cmd(out, c),
        Command::Catalog(c) => {
            let (register, a) = match c {
                CatalogCmd::Register(a) => (true, a),
                CatalogCmd::Update(a) => (false, a),
            };
            let entry = CatalogEntry {
                resource_id: a.id,
                name: a.name,
                sharing: a.sharing.into(),
                open: a.open.into(),
                format: a.format,
                link: a.link,
            };
            let body = if register {
                TxBody::CatalogRegister(entry)
            } else {
                TxBody::CatalogUpdate(entry)
            };
            write_body(out, &a.w, body)
        }
        Command::Access(c) => access_cmd(out, c),
        Command::Governance(c) => governance_cmd(out, c),
        Command::Query(q) => query_cmd(out, q),
        Command::Proof(a) => proof_cmd(out, a),
        Command::Verify(a) => verify_cmd(out, a),
        Command::Status(a) => status_cmd(out, a),
        Command::Checkpoint(a) => checkpoint_cmd(out, a),
        Command::Audit(a) => audit_cmd(out, a),
        Command::Consistency(a) => consistency_cmd(out, a),
        Command::Bench(a) => bench_cmd(out, a),
        Command::BenchProofs(a) => bench_proofs_cmd(out, a),
    }
}

fn bench_proofs_cmd(out: Output, a: BenchProofsArgs) -> anyhow::Result<()> {
    let report = crate::bench_proofs::run(&crate::bench_proofs::ProofBenchOptions {
        nodes: a.nodes,
        ids: a.ids,
        duration: a.duration,
        warmup: a.warmup,
        concurrency: a.concurrency,
        genesis: a.genesis,
        verify_max: a.verify_max,
        status: a.status,
        progress: !a.quiet,
    })?;
    out.show(&report, || crate::bench_proofs::summary(&report));
    Ok(())
}

fn bench_cmd(out: Output, a: BenchArgs) -> anyhow::Result<()> {
    let mix = crate::bench::Mix::parse(&a.mix).map_err(|e| UsageError(format!("--mix: {e}")))?;
    let report = crate::bench::run(&crate::bench::BenchOptions {
        nodes: a.nodes,
        keys: a.keys,
        rate: a.rate,
        duration: a.duration,
        warmup: a.warmup,
        drain: a.drain,
        mix,
        batch: a.batch,
        concurrency: a.concurrency,
        inflight: a.inflight,
        presign: a.presign,
        poll: a.poll,
        acks_out: a.acks_out,
        progress: !a.quiet,
    })?;
    out.show(&report, || crate::bench::summary(&report));
    Ok(())
}

fn client(node: &NodeOpt) -> anyhow::Result<NodeClient> {
    Ok(NodeClient::new(&node.node)?)
}

fn hash_arg(what: &str, s: &str) -> anyhow::Result<Hash> {
    Hash::from_hex(s).map_err(|_| UsageError(format!("{what} {s:?} is not 64 hex digits")).into())
}

/// Writes `text` to a new or existing file (not a key: plain permissions).
fn save(path: &Path, text: &str) -> Result<(), LocalError> {
    std::fs::write(path, text).map_err(|e| LocalError::io(path, e))
}

// ---- keys and testnet ----------------------------------------------------------------

fn keys_cmd(out: Output, k: KeysCmd) -> anyhow::Result<()> {
    let (info, created) = match k {
        KeysCmd::New { out: path } => (keys::new_key_file(&path)?, true),
        KeysCmd::Show { file } => (keys::show_key_file(&file)?, false),
    };
    out.show(&info, || human_key(&info, created));
    Ok(())
}

fn human_key(info: &KeyInfo, created: bool) -> String {
    format!(
        "{}file        {}\npublic key  {}\npeer id     {}",
        if created {
            "created a new key (mode 0600; keep it secret)\n"
        } else {
            ""
        },
        info.file,
        info.public_key,
        info.peer_id
    )
}

fn testnet_init(out: Output, a: TestnetInitArgs) -> anyhow::Result<()> {
    let net = testnet::init(&TestnetOptions {
        validators: a.validators,
        out: a.out,
        chain_id: a.chain_id,
        base_port: a.base_port,
        api_base_port: a.api_base_port,
        host: a.host,
        genesis_time_ms: now_ms(),
    })?;
    out.show(&net, || testnet::summary(&net));
    Ok(())
}

// ---- writing -------------------------------------------------------------------------

fn write_body(out: Output, w: &WriteOpts, body: TxBody) -> anyhow::Result<()> {
    let key = load_key(w.key.as_deref())?;
    let client = client(&w.node)?;
    let doc = ledger::proof::document_hashes(&body).first().copied();
    let mut writer = Writer::new(&client, key, w.ttl);
    let written = writer.submit(body, w.wait)?;
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        written: &'a Written,
        document_hash: Option<Hash>,
    }
    let shown = Shown {
        written: &written,
        document_hash: doc,
    };
    out.show(&shown, || human_written(&written, doc));
    Ok(())
}

fn human_written(w: &Written, doc: Option<Hash>) -> String {
    let s = &w.submitted;
    let mut text = match (s.status.as_str(), s.height) {
        ("committed", Some(h)) => format!(
            "committed {} {} at height {h}{}",
            w.kind,
            s.id,
            s.leaf_index
                .map(|l| format!(", leaf {l}"))
                .unwrap_or_default()
        ),
        (status, _) => format!(
            "submitted {} {} ({status}); follow it with `govledger query tx {}`",
            w.kind, s.id, s.id
        ),
    };
    if let Some(d) = doc {
        text += &format!("\ndocument blake3 {d}");
    }
    text += &format!(
        "\nsigner {} nonce {}, expires {}",
        w.signer,
        w.nonce,
        format_ms(w.expires_at_ms)
    );
    text
}

fn approval_cmd(out: Output, c: ApprovalCmd) -> anyhow::Result<()> {
    match c {
        ApprovalCmd::Issue {
            id,
            kind,
            subject,
            decision,
            doc,
            valid_from,
            valid_until,
            note,
            w,
        } => {
            let body = TxBody::ApprovalIssue(ApprovalIssue {
                approval_id: id,
                kind,
                subject,
                decision: decision.into(),
                document_hash: document_arg(doc.document.as_deref(), doc.document_hash.as_deref())?,
                valid_from_ms: valid_from.unwrap_or_else(now_ms),
                valid_until_ms: valid_until,
                note,
            });
            write_body(out, &w, body)
        }
        ApprovalCmd::Amend {
            id,
            decision,
            doc,
            valid_until,
            reason,
            w,
        } => {
            let body = TxBody::ApprovalAmend(ApprovalAmend {
                approval_id: id,
                decision: decision.into(),
                document_hash: document_arg(doc.document.as_deref(), doc.document_hash.as_deref())?,
                valid_until_ms: valid_until,
                reason,
            });
            write_body(out, &w, body)
        }
        ApprovalCmd::Revoke { id, reason, w } => {
            let body = TxBody::ApprovalRevoke(ApprovalRevoke {
                approval_id: id,
                reason,
            });
            write_body(out, &w, body)
        }
    }
}

fn land_cmd(out: Output, c: LandCmd) -> anyhow::Result<()> {
    let doc = |d: &DocumentOpt| document_arg(d.document.as_deref(), d.document_hash.as_deref());
    match c {
        LandCmd::Register {
            parcel,
            owner,
            doc: d,
            w,
        } => {
            let body = TxBody::LandRegister(LandRegister {
                parcel_id: parcel,
                owner,
                document_hash: doc(&d)?,
            });
            write_body(out, &w, body)
        }
        LandCmd::Transfer {
            parcel,
            from,
            to,
            deed,
            w,
        } => {
            let body = TxBody::LandTransfer(LandTransfer {
                parcel_id: parcel,
                from,
                to,
                deed_hash: document_arg(deed.deed.as_deref(), deed.deed_hash.as_deref())?,
            });
            write_body(out, &w, body)
        }
        LandCmd::Encumber {
            parcel,
            id,
            kind,
            holder,
            doc: d,
            w,
        } => {
            let body = TxBody::LandEncumber(LandEncumber {
                parcel_id: parcel,
                encumbrance_id: id,
                kind: kind.into(),
                holder,
                document_hash: doc(&d)?,
            });
            write_body(out, &w, body)
        }
        LandCmd::Release {
            parcel,
            id,
            doc: d,
            w,
        } => {
            let body = TxBody::LandRelease(LandRelease {
                parcel_id: parcel,
                encumbrance_id: id,
                document_hash: doc(&d)?,
            });
            write_body(out, &w, body)
        }
    }
}

fn access_cmd(out: Output, c: AccessCmd) -> anyhow::Result<()> {
    match c {
        AccessCmd::Log {
            subject,
            resource,
            purpose,
            legal_basis,
            at,
            w,
        } => {
            let body = TxBody::DataAccess(DataAccess {
                subject: hash_arg("pseudonym", &subject)?,
                resource_id: resource,
                purpose,
                legal_basis,
                accessed_at_ms: at.unwrap_or_else(now_ms),
            });
            write_body(out, &w, body)
        }
        AccessCmd::Pseudonym {
            citizen_id,
            secret_key_file,
        } => {
            let secret = write::read_pseudonym_secret(&secret_key_file)?;
            let p = write::pseudonym(&secret, &citizen_id);
            out.show(&serde_json::json!({ "pseudonym": p }), || p.to_hex());
            Ok(())
        }
    }
}

fn governance_cmd(out: Output, c: GovernanceCmd) -> anyhow::Result<()> {
    match c {
        GovernanceCmd::Vote {
            proposal,
            approve,
            reject,
            w,
        } => {
            debug_assert!(approve != reject);
            let body = TxBody::GovernanceVote(GovernanceVote {
                proposal_id: hash_arg("proposal id", &proposal)?,
                approve: approve && !reject,
            });
            write_body(out, &w, body)
        }
        GovernanceCmd::Propose(action) => {
            let (action, common) = gov_action(action)?;
            let body = TxBody::GovernancePropose(GovernancePropose {
                action,
                description: common.description,
            });
            write_body(out, &common.w, body)
        }
    }
}

fn gov_action(a: ProposeAction) -> anyhow::Result<(GovAction, ProposeCommon)> {
    Ok(match a {
        ProposeAction::AddDepartment {
            id,
            name,
            weight,
            common,
        } => (
            GovAction::AddDepartment {
                id,
                name,
                governance_weight: weight,
            },
            common,
        ),
        ProposeAction::AddMember {
            member,
            department,
            roles,
            name,
            common,
        } => (
            GovAction::AddMember {
                key: public_key_arg(&member)?,
                department,
                roles: roles.into_iter().collect(),
                name,
            },
            common,
        ),
        ProposeAction::RemoveMember { member, common } => (
            GovAction::RemoveMember {
                key: public_key_arg(&member)?,
            },
            common,
        ),
        ProposeAction::GrantRole {
            member,
            role,
            common,
        } => (
            GovAction::GrantRole {
                key: public_key_arg(&member)?,
                role,
            },
            common,
        ),
        ProposeAction::RevokeRole {
            member,
            role,
            common,
        } => (
            GovAction::RevokeRole {
                key: public_key_arg(&member)?,
                role,
            },
            common,
        ),
        ProposeAction::AddValidator {
            validator,
            department,
            power,
            address,
            common,
        } => (
            GovAction::AddValidator {
                validator: ledger::Validator {
                    department,
                    public_key: public_key_arg(&validator)?,
                    power,
                    address,
                },
            },
            common,
        ),
        ProposeAction::RemoveValidator { validator, common } => (
            GovAction::RemoveValidator {
                key: public_key_arg(&validator)?,
            },
            common,
        ),
        ProposeAction::SetValidatorPower {
            validator,
            power,
            common,
        } => (
            GovAction::SetValidatorPower {
                key: public_key_arg(&validator)?,
                power,
            },
            common,
        ),
    })
}

// ---- reading -------------------------------------------------------------------------

fn page_query(p: &PageOpts) -> Vec<(&'static str, String)> {
    let mut q = vec![];
    if let Some(a) = p.after {
        q.push(("after", a.to_string()));
    }
    if let Some(l) = p.limit {
        q.push(("limit", l.to_string()));
    }
    q
}

fn query_cmd(out: Output, q: QueryCmd) -> anyhow::Result<()> {
    let (node, path, query, keep): (NodeOpt, String, Vec<(&str, String)>, Option<&str>) = match q {
        QueryCmd::Tx { id, node } => {
            let id = hash_arg("record id", &id)?;
            (node, format!("/v1/txs/{id}"), vec![], None)
        }
        QueryCmd::Approval { id, page, node } => (
            node,
            format!("/v1/approvals/{}", path_segment(&id)),
            page_query(&page),
            None,
        ),
        QueryCmd::Approvals {
            subject,
            page,
            node,
        } => {
            let mut query = page_query(&page);
            query.push(("subject", subject));
            (node, "/v1/approvals".into(), query, None)
        }
        QueryCmd::Land {
            parcel,
            history,
            page,
            node,
        } => (
            node,
            format!("/v1/parcels/{}", path_segment(&parcel)),
            page_query(&page),
            (!history).then_some("parcel"),
        ),
        QueryCmd::Catalog { id, page, node } => {
            let path = match id {
                Some(id) => format!("/v1/catalog/{}", path_segment(&id)),
                None => "/v1/catalog".into(),
            };
            (node, path, page_query(&page), None)
        }
        QueryCmd::Access {
            subject,
            page,
            node,
        } => {
            let p = hash_arg("pseudonym", &subject)?;
            let mut query = page_query(&page);
            query.push(("subject", p.to_hex()));
            (node, "/v1/access".into(), query, None)
        }
        QueryCmd::Department {
            dept,
            from,
            to,
            page,
            node,
        } => {
            let mut query = page_query(&page);
            if let Some(f) = from {
                query.push(("from_ms", f.to_string()));
            }
            if let Some(t) = to {
                query.push(("to_ms", t.to_string()));
            }
            (
                node,
                format!("/v1/departments/{}/records", path_segment(&dept)),
                query,
                None,
            )
        }
        QueryCmd::Anchor {
            file,
            hash,
            page,
            node,
        } => {
            let h = match (file, hash) {
                (Some(f), _) => hash_file(&f)?,
                (None, Some(h)) => hash_arg("document hash", &h)?,
                (None, None) => {
                    return Err(UsageError("give --file or --hash".into()).into());
                }
            };
            (node, format!("/v1/documents/{h}"), page_query(&page), None)
        }
        QueryCmd::Block { which, node } => {
            let which = which.trim().to_ascii_lowercase();
            if which != "latest" && which.parse::<u64>().is_err() {
                return Err(
                    UsageError(format!("{which:?} is neither a height nor `latest`")).into(),
                );
            }
            (node, format!("/v1/blocks/{which}"), vec![], None)
        }
        QueryCmd::Proposal { id, page, node } => {
            let id = hash_arg("proposal id", &id)?;
            (
                node,
                format!("/v1/governance/{id}"),
                page_query(&page),
                None,
            )
        }
        QueryCmd::Account { key, node } => {
            let k = public_key_arg(&key)?;
            (node, format!("/v1/accounts/{k}"), vec![], None)
        }
        QueryCmd::Status { node } => (node, "/v1/status".into(), vec![], None),
    };
    let client = client(&node)?;
    let mut answer = client.get_json(&path, &query)?;
    if let Some(field) = keep
        && let Some(v) = answer.get(field).cloned()
    {
        answer = serde_json::json!({ field: v });
    }
    out.show(&answer, || render(&answer));
    Ok(())
}

// ---- proofs, verification, checkpoints, audit ------------------------------------------

fn proof_cmd(out: Output, a: ProofArgs) -> anyhow::Result<()> {
    let id = hash_arg("record id", &a.id)?;
    let client = client(&a.node)?;
    let bundle = client.proof(&id)?;
    if bundle.record.id != id {
        return Err(crate::client::ClientError::Decode {
            what: format!("/v1/proofs/{id}"),
            reason: format!("the bundle is for record {}", bundle.record.id),
        }
        .into());
    }
    let text = to_json(&bundle) + "\n";
    match &a.out {
        None => print!("{text}"),
        Some(path) => {
            save(path, &text)?;
            let info = serde_json::json!({
                "out": path.display().to_string(), "id": id, "height": bundle.record.height,
                "leaf_index": bundle.record.leaf_index, "kind": bundle.record.tx.tx.body.kind(),
                "chain_id": bundle.chain_id, "genesis_hash": bundle.genesis_hash,
            });
            out.show(&info, || {
                format!(
                    "saved the proof of {} {id} (height {}, leaf {}) to {}\nverify it offline with: govledger verify {} --genesis genesis.json",
                    bundle.record.tx.tx.body.kind(),
                    bundle.record.height,
                    bundle.record.leaf_index,
                    path.display(),
                    path.display()
                )
            });
        }
    }
    Ok(())
}

fn verify_cmd(out: Output, a: VerifyArgs) -> anyhow::Result<()> {
    let result = verify::verify_files(&a.bundle, &a.genesis, a.file.as_deref(), a.max_age)?;
    show_verdict(out, result)
}

/// Prints a verdict and gives the exit: 0 valid (and in force), 8 valid but not in force,
/// 4 invalid.
fn show_verdict(
    out: Output,
    result: Result<verify::Verdict, verify::VerifyFailure>,
) -> anyhow::Result<()> {
    match result {
        Ok(verify::Verdict::Record(v)) => {
            #[derive(serde::Serialize)]
            struct Valid<'a> {
                valid: bool,
                #[serde(flatten)]
                v: &'a Verified,
            }
            out.show(&Valid { valid: true, v: &v }, || human_valid(&v));
            Ok(())
        }
        Ok(verify::Verdict::Status(v)) => {
            let in_force = crate::status::in_force(&v);
            #[derive(serde::Serialize)]
            struct Valid<'a> {
                valid: bool,
                in_force: bool,
                #[serde(flatten)]
                v: &'a ledger::status::VerifiedStatus,
            }
            out.show(
                &Valid {
                    valid: true,
                    in_force,
                    v: &v,
                },
                || format!("VALID PROOF: {}", crate::status::describe(&v)),
            );
            if in_force {
                Ok(())
            } else {
                Err(anyhow::Error::new(Reported(Exit::NotInForce)))
            }
        }
        Err(f) => {
            let j = serde_json::json!({
                "valid": false, "step": f.step.code(), "step_name": f.step.name(),
                "reason": f.reason,
            });
            if out.json {
                println!("{}", to_json(&j));
            } else {
                eprintln!("INVALID: {f}");
            }
            Err(anyhow::Error::new(f).context(Reported(Exit::VerifyFailed)))
        }
    }
}

fn human_valid(v: &Verified) -> String {
    let r = &v.record;
    let mut s = format!(
        "VALID: {} record {}\n  is leaf {} of the history log at height {}, final since {}\n  signed by {}\n  checked against genesis {} (chain {:?}), following {} validator-set change(s)",
        r.kind,
        r.id,
        r.leaf_index,
        r.height,
        format_ms(r.block_time_ms),
        r.signer,
        v.genesis_hash,
        v.chain_id,
        r.validator_changes
    );
    if let Some(d) = v.document_hash {
        s += &format!("\n  the document (blake3 {d}) is the one the record names");
    }
    s
}

fn status_cmd(out: Output, a: StatusArgs) -> anyhow::Result<()> {
    use crate::args::StatusKind as K;
    use ledger::status::Subject;
    let genesis = verify::load_genesis(&a.genesis)?;
    let id = a.id.clone().unwrap_or_default();
    let need_id = || -> anyhow::Result<String> {
        if id.is_empty() {
            return Err(
                UsageError(format!("`status {:?}` needs an id", a.kind).to_lowercase()).into(),
            );
        }
        Ok(id.clone())
    };
    let hex = |what: &str| -> anyhow::Result<Hash> {
        Hash::from_hex(&need_id()?)
            .map_err(|_| UsageError(format!("{what} must be 64 hex digits")).into())
    };
    let subject = match a.kind {
        K::Approval => Subject::Approval(need_id()?),
        K::Parcel => Subject::Parcel(need_id()?),
        K::Resource => Subject::Resource(need_id()?),
        K::Department => Subject::Department(need_id()?),
        K::Access => Subject::Pseudonym(hex("a pseudonym")?),
        K::Proposal => Subject::Proposal(hex("a proposal id")?),
        K::Member => Subject::Member(ledger::PublicKey(hex("a member key")?.0)),
        K::Validators => {
            if !id.is_empty() {
                return Err(UsageError("`status validators` takes no id".into()).into());
            }
            Subject::Validators
        }
    };
    let client = client(&a.node)?;
    let bundle = crate::status::fetch(&client, &subject, a.all)?;
    let text = to_json(&bundle) + "\n";
    let result = verify::verify_any(&text, &genesis, None, a.max_age, now_ms());
    if result.is_ok()
        && let Some(path) = &a.out
    {
        save(path, &text)?;
    }
    show_verdict(out, result)
}

fn checkpoint_cmd(out: Output, a: CheckpointArgs) -> anyhow::Result<()> {
    let client = client(&a.node)?;
    let cp = client.checkpoint(a.height)?;
    save(&a.out, &(to_json(&cp) + "\n"))?;
    let h = &cp.header.header;
    let info = serde_json::json!({
        "out": a.out.display().to_string(), "chain_id": cp.chain_id,
        "genesis_hash": cp.genesis_hash, "height": h.height, "block_hash": h.hash(),
        "log_size": h.log_size, "log_root": h.log_root, "time_ms": h.time_ms,
    });
    out.show(&info, || {
        format!(
            "saved checkpoint of chain {:?} at height {} ({}) to {}\n  block {}\n  log size {}, root {}\nit is checked against genesis when used: govledger audit --genesis genesis.json --checkpoint {}",
            cp.chain_id,
            h.height,
            format_ms(h.time_ms),
            a.out.display(),
            h.hash(),
            h.log_size,
            h.log_root,
            a.out.display()
        )
    });
    Ok(())
}

fn audit_cmd(out: Output, a: AuditArgs) -> anyhow::Result<()> {
    let genesis = verify::load_genesis(&a.genesis)?;
    let checkpoint = match &a.checkpoint {
        None => None,
        Some(p) => {
            let text = verify::read_text(p, verify::BUNDLE_BYTES_MAX)?;
            Some(
                serde_json::from_str::<ledger::proof::Checkpoint>(&text).map_err(|e| {
                    LocalError {
                        path: p.display().to_string(),
                        reason: format!("not a checkpoint: {e}"),
                    }
                })?,
            )
        }
    };
    let mut client = client(&a.node)?;
    let status = client.status()?;
    if status.genesis_hash != genesis.hash() || status.chain_id != genesis.chain_id {
        let e = AuditError::Mismatch {
            height: 0,
            check: "genesis",
            reason: format!(
                "the node runs chain {:?} with genesis {}, the given genesis is {:?} {}",
                status.chain_id,
                status.genesis_hash,
                genesis.chain_id,
                genesis.hash()
            ),
        };
        return Err(report_audit_failure(out, e));
    }
    let to = a.to_height.unwrap_or(status.height);
    let bar = if !out.json && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(to);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} audit [{bar:40}] {pos}/{len} blocks {msg} ({eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let opts = AuditOptions {
        checkpoint,
        to_height: Some(to),
        ..AuditOptions::default()
    };
    let result = audit(&genesis, &mut client, &opts, &mut |p| {
        bar.set_position(p.height);
        if p.height % 64 == 0 {
            bar.set_message(format!("{} txs", p.txs));
        }
    });
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            out.show(&report, || human_report(&report));
            Ok(())
        }
        Err(e) => Err(report_audit_failure(out, e)),
    }
}

fn consistency_cmd(out: Output, a: ConsistencyArgs) -> anyhow::Result<()> {
    use crate::consistency::{ConsistencyOptions, describe, run};
    let report = run(&ConsistencyOptions {
        genesis: a.genesis,
        first: a.old,
        second: a.new,
        proof: a.proof,
        out: a.out,
        node: a.node,
    })?;
    match report.result.exit() {
        Exit::Ok => {
            out.show(&report, || describe(&report));
            Ok(())
        }
        code => {
            // Like a failed audit: the verdict on stderr, or the report on stdout with --json.
            if out.json {
                println!("{}", to_json(&report));
            } else {
                eprintln!("{}", describe(&report));
            }
            Err(anyhow::Error::new(Reported(code)))
        }
    }
}

fn report_audit_failure(out: Output, e: AuditError) -> anyhow::Error {
    match e.exit() {
        Some(Exit::AuditMismatch) => {
            if out.json {
                let j = match &e {
                    AuditError::Mismatch {
                        height,
                        check,
                        reason,
                    } => serde_json::json!({
                        "passed": false, "height": height, "check": check, "reason": reason,
                    }),
                    other => serde_json::json!({
                        "passed": false, "check": "checkpoint", "reason": other.to_string(),
                    }),
                };
                println!("{}", to_json(&j));
            } else {
                eprintln!("AUDIT FAILED: {e}");
            }
            anyhow::Error::new(e).context(Reported(Exit::AuditMismatch))
        }
        _ => e.into(),
    }
}

fn human_report(r: &AuditReport) -> String {
    let mut s = format!(
        "audit PASSED: chain {:?}, genesis {}\n  blocks         {} (heights 1-{})\n  transactions   {}\n  replay         {:.2} s, {:.0} tx/s\n  tip            height {}, block {}, {}\n  history log    size {}, root {}\n  state root     {}\n  validator-set changes announced: {}",
        r.chain_id,
        r.genesis_hash,
        r.blocks,
        r.tip_height,
        r.txs,
        r.elapsed_ms as f64 / 1000.0,
        r.txs_per_sec,
        r.tip_height,
        r.tip_hash,
        format_ms(r.tip_time_ms),
        r.log_size,
        r.log_root,
        r.state_root,
        r.validator_set_changes
    );
    if let Some(c) = &r.checkpoint {
        s += &format!(
            "\n  checkpoint     height {} (block {}) is in the chain; consistency proof from log size {} to {} verified ({} hashes)",
            c.height, c.block_hash, c.log_size, c.new_log_size, c.consistency_proof_hashes
        );
    }
    s
}

/// Prints an error the way the CLI does (text, or JSON with `--json`) and returns its exit
/// code. Errors that were already reported print nothing.
pub fn report_error(json: bool, err: &anyhow::Error) -> Exit {
    let code = crate::exit::exit_for(err);
    if err.downcast_ref::<Reported>().is_some() {
        return code;
    }
    if json {
        let mut j = err
            .chain()
            .find_map(|c| c.downcast_ref::<crate::client::ClientError>())
            .map(|c| c.to_json())
            .unwrap_or_else(|| serde_json::json!({ "error": "error" }));
        j["message"] = serde_json::Value::String(ledger::report::error_chain(err.as_ref()));
        j["exit_code"] = serde_json::Value::from(code.code());
        eprintln!("{}", serde_json::to_string(&j).unwrap_or_default());
    } else {
        eprintln!("error: {}", ledger::report::error_chain(err.as_ref()));
    }
    code
}
