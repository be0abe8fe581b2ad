//! Blocks on top of a chain tip: building a block from candidate transactions (the
//! proposer), executing and checking a proposed or synced block (every validator, every
//! syncing node and the auditor), and the resulting writes that a store commits.
//!
//! All of it is deterministic: the header commits to the transactions, the history log
//! after them, the state after them and the validator sets, so two nodes that accept the
//! same header hold the same ledger.

use crate::block::{Block, BlockHeader};
use crate::crypto::PublicKey;
use crate::execute::{
    Applied, BlockContext, BlockExecutor, BlockState, HistoryEntry, Rejection, VerifiedTx,
};
use crate::genesis::{ConsensusParams, Genesis, StateFormat, TIME_MS_MAX};
use crate::hash::Hash;
use crate::history_log::{self, Frontier, NodeId};
use crate::state::{
    Overlay, StateError, StateRead, StateView, ValidatorSetHistory, WriteSet, keys,
};
use crate::state_tree::TreeUpdate;
use crate::validator::ValidatorSet;

/// Where the chain stands after the last committed block (or genesis, at height 0).
#[derive(Clone, Debug)]
pub struct ChainTip {
    /// Chain id.
    pub chain_id: String,
    /// Height of the last block (0 = genesis only).
    pub height: u64,
    /// Its hash (`Hash::ZERO` at genesis).
    pub block_hash: Hash,
    /// Its time (the genesis time at height 0).
    pub time_ms: u64,
    /// State root after it.
    pub state_root: Hash,
    /// The history log's right edge after it.
    pub frontier: Frontier,
    /// The chain's state format (from its genesis).
    pub state_format: StateFormat,
}

impl ChainTip {
    /// The tip of a chain that has only its genesis.
    pub fn genesis(genesis: &Genesis, genesis_state_root: Hash) -> Self {
        ChainTip {
            chain_id: genesis.chain_id.clone(),
            height: 0,
            block_hash: Hash::ZERO,
            time_ms: genesis.genesis_time_ms,
            state_root: genesis_state_root,
            frontier: Frontier::empty(),
            state_format: genesis.state_format,
        }
    }

    /// The context of the block after this tip, at `time_ms`.
    pub fn next_context(&self, time_ms: u64) -> BlockContext {
        BlockContext {
            chain_id: self.chain_id.clone(),
            height: self.height + 1,
            time_ms,
            first_leaf: self.frontier.size(),
            state_format: self.state_format,
        }
    }

    /// The tip after `executed`.
    pub fn after(&self, executed: &ExecutedBlock) -> ChainTip {
        ChainTip {
            chain_id: self.chain_id.clone(),
            height: executed.header.height,
            block_hash: executed.header.hash(),
            time_ms: executed.header.time_ms,
            state_root: executed.header.state_root,
            frontier: executed.frontier.clone(),
            state_format: self.state_format,
        }
    }
}

/// A block that was executed against a tip, with everything a store must write.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, verified.
    pub txs: Vec<VerifiedTx>,
    /// Per transaction: its department, for indexes.
    pub applied: Vec<Applied>,
    /// State writes.
    pub writes: WriteSet,
    /// History-log nodes that became complete.
    pub log_nodes: Vec<(NodeId, Hash)>,
    /// The log's right edge after the block.
    pub frontier: Frontier,
    /// The validator-set history after the block, if the block changed it.
    pub validator_sets: Option<ValidatorSetHistory>,
    /// The state tree's update (state format 2).
    pub tree: Option<TreeUpdate>,
    /// Format 2: each record's place in its histories, in log order.
    pub history: Vec<HistoryEntry>,
}

impl ExecutedBlock {
    /// The block (header and transactions).
    pub fn block(&self) -> Block {
        Block {
            header: self.header.clone(),
            txs: self.txs.iter().map(|t| t.tx().clone()).collect(),
        }
    }

    /// The record id of the first transaction's leaf index.
    pub fn first_leaf_index(&self) -> u64 {
        self.header.log_size - self.txs.len() as u64
    }
}

/// Why a block cannot follow the tip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Header field does not follow from the tip or the block.
    #[error("header field `{field}` is wrong: {reason}")]
    BadHeader {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A transaction is refused.
    #[error("transaction {index} ({id}) is refused: {rejection}")]
    BadTx {
        /// Position in the block.
        index: usize,
        /// Record id.
        id: Hash,
        /// Why.
        rejection: Rejection,
    },
    /// Over the block limits of the consensus parameters.
    #[error("block exceeds limits: {0}")]
    TooLarge(String),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

fn bad(field: &'static str, reason: impl Into<String>) -> BlockError {
    BlockError::BadHeader {
        field,
        reason: reason.into(),
    }
}

/// The validator sets for a block at `height` on top of `state`: (in force, next).
pub fn validators_for<S: StateRead>(
    state: &S,
    height: u64,
) -> Result<(ValidatorSet, ValidatorSet), StateError> {
    let sets = state.validator_sets()?;
    let cur = sets
        .at(height)
        .cloned()
        .ok_or(StateError::Missing("the validator set in force"))?;
    let next = sets
        .at(height + 1)
        .cloned()
        .ok_or(StateError::Missing("the next validator set"))?;
    Ok((cur, next))
}

/// Builds the next block as proposer: takes candidates in order while they fit the
/// limits, skipping any that the state refuses. Returns the executed block and the
/// refused candidates with their reasons.
pub fn build_block<S: StateRead>(
    state: S,
    tip: &ChainTip,
    proposer: PublicKey,
    time_ms: u64,
    candidates: impl IntoIterator<Item = VerifiedTx>,
) -> Result<(ExecutedBlock, Vec<(VerifiedTx, Rejection)>), BlockError> {
    let height = tip.height + 1;
    let params = state.params()?;
    let (cur, next) = validators_for(&state, height)?;
    // Checked: a tip at the end of time cannot be followed (genesis validation keeps
    // genesis below TIME_MS_MAX, and blocks after it are held below it too).
    let time_ms = tip
        .time_ms
        .checked_add(1)
        .map(|next| time_ms.max(next))
        .filter(|t| *t <= TIME_MS_MAX)
        .ok_or_else(|| {
            bad(
                "time_ms",
                format!(
                    "no block time after the previous block's {} is at most {TIME_MS_MAX}",
                    tip.time_ms
                ),
            )
        })?;
    let mut ex = BlockExecutor::new(&state, tip.next_context(time_ms));
    let mut txs = Vec::new();
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    let mut bytes = 0u64;
    for vtx in candidates {
        if txs.len() >= params.max_block_txs as usize {
            break;
        }
        let len = vtx.bytes().len() as u64;
        if bytes + len > params.max_block_bytes {
            break;
        }
        match ex.apply(&vtx) {
            Ok(a) => {
                bytes += len;
                txs.push(vtx);
                applied.push(a);
            }
            Err(Rejection::State(e)) => return Err(BlockError::State(e)),
            Err(r) => refused.push((vtx, r)),
        }
    }
    let executed = finish(
        ex, tip, &state, height, time_ms, proposer, txs, applied, &cur, &next,
    )?;
    Ok((executed, refused))
}

#[allow(clippy::too_many_arguments)]
fn finish<S: StateRead>(
    ex: BlockExecutor<&S>,
    tip: &ChainTip,
    state: &S,
    height: u64,
    time_ms: u64,
    proposer: PublicKey,
    txs: Vec<VerifiedTx>,
    applied: Vec<Applied>,
    cur: &ValidatorSet,
    next: &ValidatorSet,
) -> Result<ExecutedBlock, BlockError> {
    let BlockState {
        writes,
        root: state_root,
        tree,
        history,
    } = ex.finish(&tip.state_root)?;
    let mut frontier = tip.frontier.clone();
    let mut log_nodes = Vec::with_capacity(txs.len() * 2 + 8);
    let ids: Vec<Hash> = txs.iter().map(VerifiedTx::id).collect();
    for id in &ids {
        frontier.append(*id, &mut log_nodes);
    }
    let validator_sets = match writes.get(keys::VALIDATOR_SETS) {
        Some(_) => Some(Overlay::new(state).with_writes(&writes).validator_sets()?),
        None => None,
    };
    let header = BlockHeader {
        chain_id: tip.chain_id.clone(),
        height,
        time_ms,
        prev_hash: tip.block_hash,
        tx_root: history_log::merkle_root(&ids),
        tx_count: txs.len() as u32,
        log_size: frontier.size(),
        log_root: frontier.root(),
        state_root,
        validators_hash: cur.hash(),
        next_validators_hash: next.hash(),
        proposer,
    };
    Ok(ExecutedBlock {
        header,
        txs,
        applied,
        writes,
        log_nodes,
        frontier,
        validator_sets,
        tree,
        history,
    })
}

/// Executes a block proposed or received for `tip.height + 1` and checks that its header
/// is exactly what executing it yields. `txs` are the block's transactions, verified (the
/// caller verifies those it has not seen, in a batch). Time bounds against the local clock
/// are the caller's business; here the time must only move forward.
pub fn execute_block<S: StateRead>(
    state: S,
    tip: &ChainTip,
    header: &BlockHeader,
    txs: Vec<VerifiedTx>,
) -> Result<ExecutedBlock, BlockError> {
    let height = tip.height + 1;
    if header.chain_id != tip.chain_id {
        return Err(bad("chain_id", format!("expected {:?}", tip.chain_id)));
    }
    if header.height != height {
        return Err(bad(
            "height",
            format!("expected {height}, got {}", header.height),
        ));
    }
    if header.prev_hash != tip.block_hash {
        return Err(bad("prev_hash", format!("expected {}", tip.block_hash)));
    }
    if header.time_ms > TIME_MS_MAX {
        return Err(bad(
            "time_ms",
            format!("{} is later than {TIME_MS_MAX}", header.time_ms),
        ));
    }
    if header.time_ms <= tip.time_ms {
        return Err(bad(
            "time_ms",
            format!(
                "{} is not after the previous block's {}",
                header.time_ms, tip.time_ms
            ),
        ));
    }
    if header.tx_count as usize != txs.len() {
        return Err(bad(
            "tx_count",
            format!("header says {}, block has {}", header.tx_count, txs.len()),
        ));
    }
    let params: ConsensusParams = state.params()?;
    if txs.len() > params.max_block_txs as usize {
        return Err(BlockError::TooLarge(format!(
            "{} transactions, the limit is {}",
            txs.len(),
            params.max_block_txs
        )));
    }
    let bytes: u64 = txs.iter().map(|t| t.bytes().len() as u64).sum();
    if bytes > params.max_block_bytes {
        return Err(BlockError::TooLarge(format!(
            "{bytes} bytes of transactions, the limit is {}",
            params.max_block_bytes
        )));
    }
    let (cur, next) = validators_for(&state, height)?;
    if cur.get(&header.proposer).is_none() {
        return Err(bad("proposer", "not a validator at this height"));
    }
    let mut ex = BlockExecutor::new(&state, tip.next_context(header.time_ms));
    let mut applied = Vec::with_capacity(txs.len());
    for (index, vtx) in txs.iter().enumerate() {
        match ex.apply(vtx) {
            Ok(a) => applied.push(a),
            Err(Rejection::State(e)) => return Err(BlockError::State(e)),
            Err(rejection) => {
                return Err(BlockError::BadTx {
                    index,
                    id: vtx.id(),
                    rejection,
                });
            }
        }
    }
    let executed = finish(
        ex,
        tip,
        &state,
        height,
        header.time_ms,
        header.proposer,
        txs,
        applied,
        &cur,
        &next,
    )?;
    let e = &executed.header;
    let checks: [(&'static str, bool); 6] = [
        ("tx_root", e.tx_root == header.tx_root),
        ("log_size", e.log_size == header.log_size),
        ("log_root", e.log_root == header.log_root),
        ("state_root", e.state_root == header.state_root),
        (
            "validators_hash",
            e.validators_hash == header.validators_hash,
        ),
        (
            "next_validators_hash",
            e.next_validators_hash == header.next_validators_hash,
        ),
    ];
    for (field, ok) in checks {
        if !ok {
            return Err(bad(
                field,
                "does not match the result of executing the block",
            ));
        }
    }
    debug_assert_eq!(e, header);
    Ok(executed)
}

impl<B: StateRead> Overlay<B> {
    /// This overlay with `writes` applied on top (for reading the result of a block).
    pub fn with_writes(mut self, writes: &WriteSet) -> Self {
        self.extend(writes.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::execute::genesis_state;
    use crate::state::MemState;
    use crate::tx::{Anchor, Tx, TxBody};

    fn setup() -> (Genesis, MemState, ChainTip, SecretKey) {
        let (g, _, members) = crate::genesis::tests::sample();
        let gs = genesis_state(&g).unwrap();
        let mut st = MemState::new();
        st.commit(&gs.writes, gs.tree.as_ref());
        let tip = ChainTip::genesis(&g, gs.root);
        (g, st, tip, members[0].clone())
    }

    fn anchor_tx(k: &SecretKey, nonce: u64) -> VerifiedTx {
        VerifiedTx::verify(
            Tx {
                chain_id: "test".into(),
                signer: k.public_key(),
                nonce,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                body: TxBody::Anchor(Anchor {
                    document_hash: Hash([nonce as u8; 32]),
                    label: String::new(),
                }),
            }
            .sign(k),
        )
        .unwrap()
    }

    #[test]
    fn built_block_executes_identically_elsewhere() {
        let (g, st, tip, k) = setup();
        let proposer = g.validators[0].public_key;
        // Nonce 5 is refused (gap); 0, 1, 2 go in.
        let cands = vec![
            anchor_tx(&k, 0),
            anchor_tx(&k, 1),
            anchor_tx(&k, 5),
            anchor_tx(&k, 2),
        ];
        let (ex, refused) = build_block(&st, &tip, proposer, tip.time_ms + 10, cands).unwrap();
        assert_eq!(ex.txs.len(), 3);
        assert_eq!(refused.len(), 1);
        assert_eq!(ex.header.log_size, 3);
        let again = execute_block(&st, &tip, &ex.header, ex.txs.clone()).unwrap();
        assert_eq!(again.header, ex.header);
        assert_eq!(again.writes, ex.writes);
        // Next block on top.
        let mut st2 = st.clone();
        st2.commit(&ex.writes, ex.tree.as_ref());
        let tip2 = tip.after(&ex);
        let (ex2, _) = build_block(&st2, &tip2, proposer, 0, vec![anchor_tx(&k, 3)]).unwrap();
        assert_eq!(ex2.header.prev_hash, ex.header.hash());
        assert_eq!(ex2.header.log_size, 4);
        assert!(ex2.header.time_ms > ex.header.time_ms);
    }

    fn approval_tx(k: &SecretKey, nonce: u64, id: &str, revoke: bool) -> VerifiedTx {
        use crate::tx::{ApprovalIssue, ApprovalRevoke, Decision};
        let body = if revoke {
            TxBody::ApprovalRevoke(ApprovalRevoke {
                approval_id: id.into(),
                reason: "fraud".into(),
            })
        } else {
            TxBody::ApprovalIssue(ApprovalIssue {
                approval_id: id.into(),
                kind: "building-permit".into(),
                subject: "company".into(),
                decision: Decision::Granted,
                document_hash: Hash([nonce as u8; 32]),
                valid_from_ms: 0,
                valid_until_ms: None,
                note: String::new(),
            })
        };
        VerifiedTx::verify(
            Tx {
                chain_id: "test".into(),
                signer: k.public_key(),
                nonce,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                body,
            }
            .sign(k),
        )
        .unwrap()
    }

    /// Format 2: after every block the header's `state_root` is the root of a tree built
    /// from scratch over the whole state map, every key proves its value against it, the
    /// history heads chain the records in log order, and a replay elsewhere agrees.
    #[test]
    fn format_2_state_root_is_the_tree_of_the_whole_state() {
        use crate::history::{HistoryHead, HistoryId};
        use crate::state::StateView;
        use crate::state_tree::{self, MemTree};
        let (g, mut st, mut tip, k) = setup();
        assert_eq!(g.state_format, StateFormat::V2);
        let proposer = g.validators[0].public_key;
        let mut replica = st.clone();
        let mut rtip = tip.clone();
        let mut nonce = 0;
        let mut approval_records = vec![];
        for block in 0..6u64 {
            let mut txs = vec![anchor_tx(&k, nonce)];
            nonce += 1;
            if block == 0 || block == 4 {
                txs.push(approval_tx(&k, nonce, "BP-1", block == 4));
                nonce += 1;
            }
            let (ex, refused) = build_block(&st, &tip, proposer, tip.time_ms + 10, txs).unwrap();
            assert!(refused.is_empty(), "{refused:?}");
            for (i, t) in ex.txs.iter().enumerate() {
                if matches!(
                    t.tx().tx.body,
                    TxBody::ApprovalIssue(_) | TxBody::ApprovalRevoke(_)
                ) {
                    approval_records.push((ex.first_leaf_index() + i as u64, t.id()));
                }
            }
            st.commit(&ex.writes, ex.tree.as_ref());
            tip = tip.after(&ex);
            let whole: crate::state::WriteSet = st
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            let scratch = state_tree::apply(&MemTree::new(), 0, &whole).unwrap();
            assert_eq!(scratch.root_hash(), ex.header.state_root, "block {block}");
            for (key, value) in st.iter() {
                let proof =
                    state_tree::prove(st.tree().unwrap(), tip.height, key, Some(value)).unwrap();
                proof
                    .verify(&ex.header.state_root, key, Some(value))
                    .unwrap();
            }
            let absent = b"kno such key".to_vec();
            let proof = state_tree::prove(st.tree().unwrap(), tip.height, &absent, None).unwrap();
            proof.verify(&ex.header.state_root, &absent, None).unwrap();
            // A syncing node executes the same block to the same header.
            let again = execute_block(&replica, &rtip, &ex.header, ex.txs.clone()).unwrap();
            replica.commit(&again.writes, again.tree.as_ref());
            rtip = rtip.after(&again);
        }
        let head = st
            .history_head(&HistoryId::Approval("BP-1".into()))
            .unwrap();
        let mut expect = HistoryHead::default();
        for (leaf, id) in &approval_records {
            expect = expect.next(*leaf, id);
        }
        assert_eq!(approval_records.len(), 2, "issue and revoke");
        assert_eq!(head, expect);
        let dept = st
            .history_head(&HistoryId::Department("land".into()))
            .unwrap();
        assert_eq!(
            dept.count,
            tip.frontier.size(),
            "every record is the clerk's department's"
        );
    }

    /// Format 1 chains keep the chained root and write no history heads, so their blocks
    /// and headers are what they were before format 2 existed.
    #[test]
    fn format_1_keeps_the_chained_root_and_no_heads() {
        let (mut g, _, _, k) = setup();
        g.state_format = StateFormat::V1;
        let gs = genesis_state(&g).unwrap();
        assert!(gs.tree.is_none());
        assert_eq!(
            gs.root,
            crate::state::chain_state_root(&g.hash(), 0, &gs.writes)
        );
        let mut st = MemState::new();
        st.commit(&gs.writes, None);
        let tip = ChainTip::genesis(&g, gs.root);
        let proposer = g.validators[0].public_key;
        let txs = vec![anchor_tx(&k, 0), approval_tx(&k, 1, "BP-1", false)];
        let (ex, _) = build_block(&st, &tip, proposer, tip.time_ms + 10, txs).unwrap();
        assert!(ex.tree.is_none());
        assert!(
            ex.writes
                .keys()
                .all(|k| k[0] != crate::state::keys::HISTORY),
            "no history head in a format-1 block"
        );
        assert_eq!(
            ex.header.state_root,
            crate::state::chain_state_root(&tip.state_root, 1, &ex.writes)
        );
    }

    #[test]
    fn tampered_headers_are_refused() {
        let (g, st, tip, k) = setup();
        let proposer = g.validators[0].public_key;
        let (ex, _) = build_block(
            &st,
            &tip,
            proposer,
            tip.time_ms + 10,
            vec![anchor_tx(&k, 0)],
        )
        .unwrap();
        let mut cases: Vec<(&str, BlockHeader)> = vec![];
        let mut h = ex.header.clone();
        h.state_root.0[0] ^= 1;
        cases.push(("state_root", h));
        let mut h = ex.header.clone();
        h.log_root.0[0] ^= 1;
        cases.push(("log_root", h));
        let mut h = ex.header.clone();
        h.tx_root.0[0] ^= 1;
        cases.push(("tx_root", h));
        let mut h = ex.header.clone();
        h.prev_hash.0[0] ^= 1;
        cases.push(("prev_hash", h));
        let mut h = ex.header.clone();
        h.next_validators_hash.0[0] ^= 1;
        cases.push(("next_validators_hash", h));
        let mut h = ex.header.clone();
        h.time_ms = tip.time_ms;
        cases.push(("time_ms", h));
        let mut h = ex.header.clone();
        h.proposer = k.public_key();
        cases.push(("proposer", h));
        for (field, h) in cases {
            match execute_block(&st, &tip, &h, ex.txs.clone()) {
                Err(BlockError::BadHeader { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // A refused transaction makes the block invalid.
        let bad_tx = anchor_tx(&k, 7);
        let mut h = ex.header.clone();
        h.tx_count = 1;
        assert!(matches!(
            execute_block(&st, &tip, &h, vec![bad_tx]),
            Err(BlockError::BadTx { index: 0, .. })
        ));
    }
}
