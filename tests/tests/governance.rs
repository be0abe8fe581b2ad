//! Membership changes through governance with real nodes: a new validator joins and
//! signs; a removed one stops counting. And a byzantine validator's equivocation ends up
//! as committed evidence naming it.

use govledger_tests::{Cluster, Signer};
use ledger::tx::*;
use ledger::validator::Validator;
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

fn ok(v: Result<Value, govledger_tests::ApiError>) -> Value {
    match v {
        Ok(v) => v,
        Err(e) => panic!("API error {}: {}", e.status, e.body),
    }
}

/// Proposes `action` as department 0 and has departments 1 and 2 approve: 3 of 4.
fn pass(c: &Cluster, signers: &mut [Signer], action: GovAction) -> u64 {
    let api = c.nodes[0].api();
    let prop = signers[0].sign(TxBody::GovernancePropose(GovernancePropose {
        action,
        description: "test".into(),
    }));
    ok(api.submit(&prop, true));
    let mut height = 0;
    for s in signers[1..3].iter_mut() {
        let v = s.sign(TxBody::GovernanceVote(GovernanceVote {
            proposal_id: prop.id(),
            approve: true,
        }));
        height = ok(api.submit(&v, true))["height"].as_u64().unwrap();
    }
    let st = ok(api.get(&format!("/v1/governance/{}", prop.id())));
    assert!(
        st["proposal"]["status"].to_string().contains("executed"),
        "{st}"
    );
    height
}

fn signers_of(block: &Value) -> Vec<String> {
    block["commit"]["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["validator"].as_str().map(str::to_string))
        .collect()
}

/// Waits until a block certified after `after` is signed (or not) by `key`.
fn wait_signed_by(c: &Cluster, node: usize, key: &str, after: u64, present: bool) -> u64 {
    let api = c.nodes[node].api();
    let deadline = Instant::now() + T;
    loop {
        let tip = api.height().unwrap_or(0);
        if tip > after {
            let b = ok(api.get(&format!("/v1/blocks/{tip}")));
            if signers_of(&b).iter().any(|s| s == key) == present {
                return tip;
            }
        }
        assert!(
            Instant::now() < deadline,
            "validator {key} presence={present} not seen: {}",
            c.tail_log(node)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_validator_added_by_governance_joins_and_a_removed_one_stops_counting() {
    let mut c = Cluster::new(4);
    c.start_all();
    c.wait_height(&[0, 1, 2, 3], 1, T);
    let chain = c.genesis.chain_id.clone();
    let mut signers: Vec<Signer> = c
        .clients
        .iter()
        .map(|k| Signer::new(k.clone(), &chain))
        .collect();
    let new = c.add_node();
    let new_key = c.nodes[new].key.public_key();
    let executed = pass(
        &c,
        &mut signers,
        GovAction::AddValidator {
            validator: Validator {
                department: "dept-0".into(),
                public_key: new_key,
                power: 1,
                address: c.p2p_address(new),
            },
        },
    );
    c.nodes[new].start();
    // It syncs, then its precommits appear in certificates of blocks after activation.
    let seen = wait_signed_by(&c, 0, &new_key.to_hex(), executed + 2, true);
    c.wait_height(&[new], seen, T);
    let status = ok(c.nodes[0].api().get("/v1/status"));
    assert_eq!(status["validators"].as_array().map(Vec::len), Some(5));

    // Remove validator 3; once in force, it no longer signs certificates, and the other
    // four keep committing without it.
    let gone = c.nodes[3].key.public_key();
    let executed = pass(&c, &mut signers, GovAction::RemoveValidator { key: gone });
    let h = wait_signed_by(&c, 0, &gone.to_hex(), executed + 2, false);
    c.nodes[3].stop();
    c.wait_height(&[0, 1, 2, new], h + 3, T);
    c.assert_agreement(&[0, 1, 2, new]);
}

#[test]
fn an_equivocating_validator_is_named_by_committed_evidence() {
    let mut c = Cluster::new(4);
    c.append_config(3, "\n[testing]\nequivocate = true");
    c.start_all();
    c.wait_height(&[0, 1, 2, 3], 1, T);
    let byz = c.nodes[3].key.public_key().to_hex();
    let api = c.nodes[0].api();
    let mut s = Signer::new(c.clients[0].clone(), &c.genesis.chain_id);
    let deadline = Instant::now() + T;
    let mut next_height: u64 = 1;
    'search: loop {
        ok(api.submit(
            &s.sign(TxBody::Anchor(Anchor {
                document_hash: ledger::hash::hash_document(&next_height.to_le_bytes()),
                label: "load".into(),
            })),
            true,
        ));
        let tip = api.height().unwrap();
        while next_height <= tip {
            let b = ok(api.get(&format!("/v1/blocks/{next_height}")));
            next_height += 1;
            for id in b["tx_ids"].as_array().into_iter().flatten() {
                let r = ok(api.get(&format!("/v1/txs/{}", id.as_str().unwrap())));
                if r["record"]["kind"] == "evidence" {
                    let text = r["record"]["tx"].to_string();
                    assert!(text.contains(&byz), "evidence names someone else: {text}");
                    break 'search;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no evidence committed: {}",
            c.tail_log(0)
        );
    }
    c.assert_agreement(&[0, 1, 2, 3]);
}
