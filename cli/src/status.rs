//! Status bundles (proof format 2) on the citizen's side: fetching one with every page of
//! its history, and saying in plain words what a verified bundle proves.

use crate::client::{ClientError, NodeClient, path_segment};
use crate::time::format_ms;
use ledger::status::{
    BUNDLE_RECORDS_MAX, Current, HistoryPage, PAGE_RECORDS_MAX, StatusBundle, Subject, Validity,
    VerifiedStatus, approval_validity,
};

/// The API path segment of a subject kind, and its id.
pub fn route(subject: &Subject) -> String {
    let (kind, id) = match subject {
        Subject::Approval(id) => ("approval", id.clone()),
        Subject::Parcel(id) => ("parcel", id.clone()),
        Subject::Resource(id) => ("resource", id.clone()),
        Subject::Department(id) => ("department", id.clone()),
        Subject::Pseudonym(h) => ("pseudonym", h.to_hex()),
        Subject::Proposal(h) => ("proposal", h.to_hex()),
        Subject::Member(k) => ("member", k.to_hex()),
        Subject::Validators => return "validators".into(),
    };
    format!("{kind}/{}", path_segment(&id))
}

/// Fetches the status bundle of `subject` from a node; with `all`, also every older page of
/// its history (up to [`BUNDLE_RECORDS_MAX`] records in all), so that the bundle proves the
/// whole history. Nothing fetched is trusted: the caller verifies the result.
pub fn fetch(
    client: &NodeClient,
    subject: &Subject,
    all: bool,
) -> Result<StatusBundle, ClientError> {
    let path = format!("/v1/proofs/status/{}", route(subject));
    let mut bundle: StatusBundle = client.get_typed(&path, &[])?;
    if !all || subject.history().is_none() {
        return Ok(bundle);
    }
    let log_size = ledger::block::BlockHeader::decode(&bundle.header.bytes.0)
        .map(|h| h.log_size)
        .map_err(|e| ClientError::Decode {
            what: path.clone(),
            reason: format!("header bytes: {e}"),
        })?;
    let hpath = format!("/v1/proofs/history/{}", route(subject));
    let Some(history) = bundle.history.as_mut() else {
        return Ok(bundle);
    };
    let mut total: usize = history.pages.iter().map(|p| p.records.len()).sum();
    while let Some(oldest) = history.pages.last() {
        let end = oldest.before.count;
        if end == 0 || oldest.records.is_empty() || total >= BUNDLE_RECORDS_MAX {
            break;
        }
        let want = PAGE_RECORDS_MAX.min(BUNDLE_RECORDS_MAX - total);
        let page: HistoryPage = client.get_typed(
            &hpath,
            &[
                ("end", end.to_string()),
                ("records", want.to_string()),
                ("log_size", log_size.to_string()),
            ],
        )?;
        total += page.records.len();
        history.pages.push(page);
    }
    Ok(bundle)
}

/// Whether what a verified bundle proves is "in force": an approval valid at the proven
/// height, a parcel or catalogue entry that exists, an active member key. Other subjects
/// (histories, the validator set) are always in force.
pub fn in_force(v: &VerifiedStatus) -> bool {
    match &v.current {
        Current::Approval(Some(a)) => approval_validity(a, v.time_ms) == Validity::Valid,
        Current::Approval(None)
        | Current::Parcel(None)
        | Current::Resource(None)
        | Current::Proposal(None)
        | Current::Member(None)
        | Current::Department(None) => false,
        Current::Member(Some(m)) => m.active,
        _ => true,
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a verified status bundle proves, in plain words.
pub fn describe(v: &VerifiedStatus) -> String {
    use crate::output::escape_untrusted as e;
    let when = format!(
        "as of height {} ({})",
        thousands(v.height),
        format_ms(v.time_ms)
    );
    let mut s = match &v.current {
        Current::Approval(Some(a)) => {
            let validity = match approval_validity(a, v.time_ms) {
                Validity::Valid => "VALID, not revoked, within its validity".to_string(),
                Validity::Revoked => "REVOKED by its issuer".to_string(),
                Validity::NotYetValid => {
                    format!("NOT YET VALID (valid from {})", format_ms(a.valid_from_ms))
                }
                Validity::Expired => format!(
                    "EXPIRED (valid until {})",
                    a.valid_until_ms.map(format_ms).unwrap_or_default()
                ),
            };
            let until = match a.valid_until_ms {
                Some(u) => format!("until {}", format_ms(u)),
                None => "with no end".into(),
            };
            let decision = serde_json::to_value(a.decision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "approval {} ({}, {decision}) issued by {}: {validity}, {when}\n  subject {}; valid from {} {until}; amended {} time(s); document {}",
                e(&a.approval_id),
                e(&a.kind),
                e(&a.issuer),
                e(&a.subject),
                format_ms(a.valid_from_ms),
                a.amendments,
                a.document_hash
            )
        }
        Current::Approval(None) => format!(
            "{}: NO SUCH APPROVAL on the ledger, {when} (proven absent)",
            e(&v.subject.describe())
        ),
        Current::Parcel(Some(p)) => {
            let mut t = format!(
                "parcel {} is owned by {}, {when}\n  registered by {}; title document {}",
                e(&p.parcel_id),
                e(&p.owner),
                e(&p.registered_by),
                p.document_hash
            );
            if let Some(f) = p.freeze() {
                t += &format!(
                    "\n  FROZEN by {} ({}): it cannot be transferred",
                    e(&f.holder),
                    e(&f.encumbrance_id)
                );
            }
            if p.encumbrances.is_empty() {
                t += "\n  no open encumbrance";
            }
            for en in &p.encumbrances {
                t += &format!(
                    "\n  open encumbrance {} ({:?}) held by {}",
                    e(&en.encumbrance_id),
                    en.kind,
                    e(&en.holder)
                );
            }
            t
        }
        Current::Parcel(None) => format!(
            "{}: NO SUCH PARCEL on the ledger, {when} (proven absent)",
            e(&v.subject.describe())
        ),
        Current::Resource(Some(c)) => format!(
            "catalogue resource {} ({}) of {}: sharing {:?}, open {:?}, {when}",
            e(&c.entry.resource_id),
            e(&c.entry.name),
            e(&c.owner),
            c.entry.sharing,
            c.entry.open
        ),
        Current::Resource(None) => format!(
            "{}: NOT IN THE CATALOGUE, {when} (proven absent)",
            e(&v.subject.describe())
        ),
        Current::Proposal(Some(p)) => format!(
            "proposal {} by {}: {:?}, {} vote(s), {when}",
            p.proposal_id,
            e(&p.department),
            p.status,
            p.votes.len()
        ),
        Current::Proposal(None) => format!(
            "{}: NO SUCH PROPOSAL, {when} (proven absent)",
            e(&v.subject.describe())
        ),
        Current::Member(Some(m)) => format!(
            "{} belongs to {} ({}): {}, roles {}, {when}",
            v.subject.describe(),
            e(&m.department),
            e(&m.name),
            if m.active { "ACTIVE" } else { "REMOVED" },
            m.roles
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Current::Member(None) => format!(
            "{}: NOT A MEMBER KEY, {when} (proven absent)",
            v.subject.describe()
        ),
        Current::Department(Some(d)) => format!(
            "department {} ({}), governance weight {}, {when}",
            e(&d.id),
            e(&d.name),
            d.governance_weight
        ),
        Current::Department(None) => format!(
            "{}: NOT A DEPARTMENT of this chain, {when} (proven absent)",
            e(&v.subject.describe())
        ),
        Current::Validators(sets) => {
            let mut t = format!("validator sets, {when}");
            for (from, set) in &sets.sets {
                t += &format!(
                    "\n  from height {}: {} validator(s), total power {}",
                    thousands(*from),
                    set.len(),
                    set.total_power()
                );
            }
            t
        }
        Current::Pseudonym => format!("data-access events of {}, {when}", v.subject.describe()),
    };
    if let Some(head) = v.head {
        if v.complete {
            s += &format!(
                "\n  history COMPLETE: {} record(s), every one shown and proven",
                head.count
            );
        } else {
            s += &format!(
                "\n  history: the newest {} of {} record(s) shown and proven; the {} older ones are not in this bundle (fetch them with `govledger status … --all`)",
                v.records.len(),
                head.count,
                head.count - v.records.len() as u64
            );
        }
        for r in &v.records {
            s += &format!(
                "\n    leaf {:>8}  {:<18} signed {}  {}",
                r.leaf_index,
                r.tx.tx.body.kind(),
                format_ms(r.tx.tx.created_at_ms),
                record_line(&r.tx.tx.body)
            );
        }
    }
    s += &format!(
        "\n  checked against the genesis, following {} validator-set change(s); block {}",
        v.validator_changes, v.block_hash
    );
    s
}

fn record_line(body: &ledger::tx::TxBody) -> String {
    use crate::output::escape_untrusted as e;
    use ledger::tx::TxBody as B;
    match body {
        B::ApprovalIssue(a) => format!("issued {} to {}", e(&a.approval_id), e(&a.subject)),
        B::ApprovalAmend(a) => format!("amended {}", e(&a.approval_id)),
        B::ApprovalRevoke(a) => format!("revoked {}: {}", e(&a.approval_id), e(&a.reason)),
        B::LandRegister(l) => format!("registered {} to {}", e(&l.parcel_id), e(&l.owner)),
        B::LandTransfer(l) => format!(
            "transferred {} from {} to {}",
            e(&l.parcel_id),
            e(&l.from),
            e(&l.to)
        ),
        B::LandEncumber(l) => format!(
            "encumbered {} ({:?}, {})",
            e(&l.parcel_id),
            l.kind,
            e(&l.encumbrance_id)
        ),
        B::LandRelease(l) => format!("released {} on {}", e(&l.encumbrance_id), e(&l.parcel_id)),
        B::CatalogRegister(c) => format!("registered resource {}", e(&c.resource_id)),
        B::CatalogUpdate(c) => format!("updated resource {}", e(&c.resource_id)),
        B::DataAccess(d) => format!(
            "accessed {} for {:?} (legal basis {:?})",
            e(&d.resource_id),
            e(&d.purpose),
            e(&d.legal_basis)
        ),
        B::GovernancePropose(_) => "proposal".into(),
        B::GovernanceVote(v) => format!("vote {}", if v.approve { "yes" } else { "no" }),
        B::Anchor(a) => format!("anchored {}", a.document_hash),
        B::Evidence(_) => "evidence of equivocation".into(),
    }
}
