//! Readable scenarios, one per rule of Algorithm 1 of "The latest gossip on BFT consensus"
//! (Buchman, Kwon, Milosevic, 2018), each naming the lines it exercises, plus the
//! contract of the crate (persist before broadcast, restarts, drops, bounds, evidence).
//!
//! One machine under test ("us", validator 0 in canonical order) among four validators of
//! equal power (f = 1, quorum 3). At height 1 the proposer of round r is validator
//! `(1 + r) mod 4`: validator 1 in round 0, 2 in round 1, 3 in round 2, us in round 3.

use consensus::sim::rng::Rng;
use consensus::{
    Consensus, ConsensusError, Input, Message, Output, PersistedState, RoundValue, Step, Timeout,
    TimeoutParams, certificate_votes,
};
use ledger::validator::Validator;
use ledger::vote::EquivocationKey;
use ledger::{
    CommitCertificate, Evidence, Hash, Proposal, PublicKey, SecretKey, ValidatorSet, Vote, VoteType,
};

const CHAIN: &str = "paper-test";
use VoteType::{Precommit, Prevote};

fn params() -> TimeoutParams {
    TimeoutParams {
        propose_ms: 1000,
        propose_delta_ms: 500,
        prevote_ms: 400,
        prevote_delta_ms: 100,
        precommit_ms: 400,
        precommit_delta_ms: 100,
    }
}

fn block(n: u8) -> Hash {
    Hash([n; 32])
}

/// Four (or `n`) validators in canonical order, and the machine of validator 0.
struct Net {
    keys: Vec<SecretKey>,
    set: ValidatorSet,
    c: Consensus,
}

fn keys_sorted(n: u8) -> Vec<SecretKey> {
    let mut keys: Vec<SecretKey> = (1..=n).map(|i| SecretKey::from_seed(&[i; 32])).collect();
    keys.sort_by_key(|k| k.public_key());
    keys
}

fn set_of(keys: &[SecretKey], powers: &[u64]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .zip(powers)
            .enumerate()
            .map(|(i, (k, p))| Validator {
                department: format!("d{i}"),
                public_key: k.public_key(),
                power: *p,
                address: String::new(),
            })
            .collect(),
    )
    .unwrap()
}

impl Net {
    fn new() -> Net {
        Net::with_restored(None)
    }

    fn with_restored(restored: Option<PersistedState>) -> Net {
        let keys = keys_sorted(4);
        let set = set_of(&keys, &[1, 1, 1, 1]);
        let c = Consensus::new(CHAIN.into(), params(), Some(keys[0].clone()), restored);
        Net { keys, set, c }
    }

    fn pk(&self, i: usize) -> PublicKey {
        self.keys[i].public_key()
    }

    fn start(&mut self, height: u64) -> Vec<Output> {
        let validators = self.set.clone();
        self.c.handle(Input::StartHeight { height, validators })
    }

    fn vote(&self, i: usize, h: u64, r: u32, t: VoteType, b: Option<Hash>) -> Vote {
        Vote::new_signed(CHAIN, h, r, t, b, &self.keys[i])
    }

    fn proposal(&self, i: usize, h: u64, r: u32, pol: Option<u32>, b: Hash) -> Proposal {
        Proposal::new_signed(CHAIN, h, r, pol, b, &self.keys[i])
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        let outs = self.c.handle(input);
        assert_persist_before_broadcast(&outs);
        outs
    }

    /// Votes of validators `ids` for `(h, r, t, b)`; all outputs.
    fn votes(
        &mut self,
        ids: &[usize],
        h: u64,
        r: u32,
        t: VoteType,
        b: Option<Hash>,
    ) -> Vec<Output> {
        let mut outs = Vec::new();
        for &i in ids {
            let v = self.vote(i, h, r, t, b);
            outs.extend(self.feed(Input::Vote(v)));
        }
        outs
    }

    /// The proposal of `(h, r)` from its proposer, answered valid (or not).
    fn propose(&mut self, h: u64, r: u32, pol: Option<u32>, b: Hash, valid: bool) -> Vec<Output> {
        let proposer = self.set.proposer(h, r).public_key;
        let i = self
            .keys
            .iter()
            .position(|k| k.public_key() == proposer)
            .unwrap();
        let p = self.proposal(i, h, r, pol, b);
        let mut outs = self.feed(Input::Proposal(p));
        if validate_requests(&outs).contains(&b) {
            outs.extend(self.feed(Input::BlockValidity {
                block_hash: b,
                valid,
            }));
        }
        outs
    }

    fn timeout(&mut self, h: u64, r: u32, step: Step) -> Vec<Output> {
        self.feed(Input::TimeoutElapsed(Timeout {
            height: h,
            round: r,
            step,
            duration_ms: 0,
        }))
    }

    /// Drives us from round `r` (step prevote or later) to round `r + 1` with nil
    /// precommits from the others (L47, L65).
    fn next_round_via_nil_precommits(&mut self, h: u64, r: u32) -> Vec<Output> {
        let mut outs = self.votes(&[1, 2, 3], h, r, Precommit, None);
        assert!(
            scheduled(&outs)
                .iter()
                .any(|t| t.step == Step::Precommit && t.round == r)
        );
        outs.extend(self.timeout(h, r, Step::Precommit));
        assert_eq!(self.c.round(), Some(r + 1));
        outs
    }
}

fn assert_persist_before_broadcast(outs: &[Output]) {
    // Every broadcast of a message signed in this batch follows a Persist whose watermark
    // covers it.
    let mut watermark = None;
    for o in outs {
        match o {
            Output::Persist(s) => watermark = s.last_signed,
            Output::Broadcast(m) => {
                let pos = consensus::SignedStep {
                    height: m.height(),
                    round: m.round(),
                    step: m.step(),
                };
                if let Some(w) = watermark {
                    assert!(
                        w >= pos,
                        "broadcast {pos:?} above the persisted watermark {w:?}"
                    );
                }
            }
            _ => {}
        }
    }
}

fn broadcast_votes(outs: &[Output]) -> Vec<Vote> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Vote(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn broadcast_proposals(outs: &[Output]) -> Vec<Proposal> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn scheduled(outs: &[Output]) -> Vec<Timeout> {
    outs.iter()
        .filter_map(|o| match o {
            Output::ScheduleTimeout(t) => Some(*t),
            _ => None,
        })
        .collect()
}

fn validate_requests(outs: &[Output]) -> Vec<Hash> {
    outs.iter()
        .filter_map(|o| match o {
            Output::ValidateBlock { block_hash, .. } => Some(*block_hash),
            _ => None,
        })
        .collect()
}

fn decisions(outs: &[Output]) -> Vec<(u64, u32, Hash, CommitCertificate)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Decide {
                height,
                round,
                block_hash,
                certificate,
            } => Some((*height, *round, *block_hash, certificate.clone())),
            _ => None,
        })
        .collect()
}

fn drops(outs: &[Output]) -> Vec<ConsensusError> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Dropped { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn persists(outs: &[Output]) -> Vec<PersistedState> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn single_vote(outs: &[Output]) -> (VoteType, u32, Option<Hash>) {
    let votes = broadcast_votes(outs);
    assert_eq!(votes.len(), 1, "expected one vote in {outs:#?}");
    (votes[0].vote_type, votes[0].round, votes[0].block_hash)
}

/// L10-L21: StartRound(0) schedules the propose timeout, which grows with the round.
#[test]
fn l11_start_round_schedules_propose_timeout_growing_with_round() {
    let mut n = Net::new();
    let outs = n.start(1);
    let t = scheduled(&outs);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].height, t[0].round, t[0].step, t[0].duration_ms),
        (1, 0, Step::Propose, 1000)
    );
    assert_eq!(n.c.step(), Some(Step::Propose));
    assert!(broadcast_votes(&outs).is_empty());
    assert_eq!(params().duration_ms(Step::Propose, 3), 2500);
    assert_eq!(params().duration_ms(Step::Precommit, 2), 600);
    assert_eq!(
        params().duration_ms(Step::Prevote, u32::MAX),
        400 + 100 * u64::from(u32::MAX)
    );
}

/// L22-L27: a valid proposal with validRound -1 from the round's proposer gets our prevote,
/// persisted first.
#[test]
fn l22_prevote_for_a_valid_proposal() {
    let mut n = Net::new();
    n.start(1);
    let p = n.proposal(1, 1, 0, None, block(7));
    let outs = n.feed(Input::Proposal(p));
    assert_eq!(validate_requests(&outs), vec![block(7)]);
    assert!(broadcast_votes(&outs).is_empty(), "waits for valid(v)");
    let outs = n.feed(Input::BlockValidity {
        block_hash: block(7),
        valid: true,
    });
    assert_eq!(single_vote(&outs), (Prevote, 0, Some(block(7))));
    let persist_at = outs
        .iter()
        .position(|o| matches!(o, Output::Persist(_)))
        .unwrap();
    let broadcast_at = outs
        .iter()
        .position(|o| matches!(o, Output::Broadcast(_)))
        .unwrap();
    assert!(persist_at < broadcast_at);
    let s = &persists(&outs)[0];
    assert_eq!((s.height, s.round, s.step), (1, 0, Step::Prevote));
    assert_eq!(s.signed.len(), 1);
    assert_eq!(n.c.step(), Some(Step::Prevote));
}

/// L22-L26: an invalid proposal gets a nil prevote.
#[test]
fn l26_prevote_nil_for_an_invalid_proposal() {
    let mut n = Net::new();
    n.start(1);
    let outs = n.propose(1, 0, None, block(7), false);
    assert_eq!(single_vote(&outs), (Prevote, 0, None));
}

/// L57-L60: no proposal before the propose timeout: prevote nil. A stale timeout does
/// nothing.
#[test]
fn l57_propose_timeout_prevotes_nil() {
    let mut n = Net::new();
    n.start(1);
    assert!(n.timeout(1, 5, Step::Propose).is_empty());
    let outs = n.timeout(1, 0, Step::Propose);
    assert_eq!(single_vote(&outs), (Prevote, 0, None));
    // Already prevoted: a second timeout, or the proposal arriving now, changes nothing.
    assert!(broadcast_votes(&n.timeout(1, 0, Step::Propose)).is_empty());
    assert!(broadcast_votes(&n.propose(1, 0, None, block(7), true)).is_empty());
}

/// L34-L35 and L61-L64: 2f+1 prevotes of mixed values schedule the prevote timeout once;
/// when it fires we precommit nil.
#[test]
fn l34_l61_prevote_timeout_then_precommit_nil() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true); // we prevote block 7
    let mut outs = n.votes(&[1], 1, 0, Prevote, None);
    assert!(scheduled(&outs).is_empty(), "2 of 4 is not a quorum");
    outs = n.votes(&[2], 1, 0, Prevote, Some(block(9)));
    let t = scheduled(&outs);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].step, t[0].round, t[0].duration_ms),
        (Step::Prevote, 0, 400)
    );
    outs = n.votes(&[3], 1, 0, Prevote, None);
    assert!(
        scheduled(&outs).is_empty(),
        "L34 fires for the first time only"
    );
    assert!(broadcast_votes(&outs).is_empty());
    outs = n.timeout(1, 0, Step::Prevote);
    assert_eq!(single_vote(&outs), (Precommit, 0, None));
    assert_eq!(n.c.locked(), None);
}

/// L44-L46: 2f+1 nil prevotes: precommit nil at once.
#[test]
fn l44_nil_polka_precommits_nil() {
    let mut n = Net::new();
    n.start(1);
    n.timeout(1, 0, Step::Propose); // we prevote nil
    let outs = n.votes(&[1, 2], 1, 0, Prevote, None);
    assert_eq!(single_vote(&outs), (Precommit, 0, None));
}

/// L36-L43: the proposal, valid, with 2f+1 prevotes for it: lock on it, precommit it, and
/// it becomes the valid value.
#[test]
fn l36_lock_on_polka() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true);
    let outs = n.votes(&[1, 2], 1, 0, Prevote, Some(block(7)));
    let precommits: Vec<_> = broadcast_votes(&outs)
        .into_iter()
        .filter(|v| v.vote_type == Precommit)
        .collect();
    assert_eq!(precommits.len(), 1);
    assert_eq!(precommits[0].block_hash, Some(block(7)));
    let lock = RoundValue {
        round: 0,
        block_hash: block(7),
    };
    assert_eq!(n.c.locked(), Some(lock));
    assert_eq!(n.c.valid(), Some(lock));
    // The lock is persisted before the precommit leaves.
    let s = persists(&outs).pop().unwrap();
    assert_eq!(s.locked, Some(lock));
}

/// L36 with step = precommit (L42-L43 only): a polka seen after we precommitted nil updates
/// validValue but not the lock.
#[test]
fn l42_late_polka_sets_valid_value_not_lock() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true);
    n.votes(&[1, 2], 1, 0, Prevote, None); // 2f+1 prevotes (ours is for 7): L34
    let outs = n.timeout(1, 0, Step::Prevote); // L61
    assert_eq!(single_vote(&outs), (Precommit, 0, None));
    // Validator 1 also prevoted 7 (equivocating), and 3 prevotes 7: polka for 7.
    n.votes(&[1, 3], 1, 0, Prevote, Some(block(7)));
    assert_eq!(n.c.locked(), None);
    assert_eq!(
        n.c.valid(),
        Some(RoundValue {
            round: 0,
            block_hash: block(7)
        })
    );
}

/// Lock (L36) then L22-L26 in a later round: a validator locked on v prevotes nil for a
/// different proposal without a proof of lock.
#[test]
fn l22_locked_validator_prevotes_nil_for_another_value() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true);
    n.votes(&[1, 2], 1, 0, Prevote, Some(block(7))); // lock on 7
    n.next_round_via_nil_precommits(1, 0);
    let outs = n.propose(1, 1, None, block(8), true);
    assert_eq!(single_vote(&outs), (Prevote, 1, None));
    // ... but prevotes for the value it is locked on.
    let mut m = Net::new();
    m.start(1);
    m.propose(1, 0, None, block(7), true);
    m.votes(&[1, 2], 1, 0, Prevote, Some(block(7)));
    m.next_round_via_nil_precommits(1, 0);
    let outs = m.propose(1, 1, None, block(7), true);
    assert_eq!(single_vote(&outs), (Prevote, 1, Some(block(7))));
}

/// Unlock by a later polka, L28-L33: locked on v in round 0; a polka for v' in round 1 that
/// we saw only as prevotes; in round 2 the proposer re-proposes v' with validRound 1, and
/// since lockedRound 0 ≤ 1 we prevote v'. Without the polka of round 1, we wait for it.
#[test]
fn l28_unlock_by_later_polka() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true);
    n.votes(&[1, 2], 1, 0, Prevote, Some(block(7))); // lock on 7 in round 0
    n.next_round_via_nil_precommits(1, 0);
    // Round 1: no proposal reaches us; we prevote nil on timeout (L57)...
    let outs = n.timeout(1, 1, Step::Propose);
    assert_eq!(single_vote(&outs), (Prevote, 1, None));
    // ... and the others prevote 8: a polka for 8 in round 1 (no proposal here, so no L36).
    n.votes(&[1, 2, 3], 1, 1, Prevote, Some(block(8)));
    n.timeout(1, 1, Step::Prevote);
    n.next_round_via_nil_precommits(1, 1);
    // Round 2: proposal of 8 with validRound 1.
    let outs = n.propose(1, 2, Some(1), block(8), true);
    assert_eq!(single_vote(&outs), (Prevote, 2, Some(block(8))));
    // Then L36 relocks on 8 in round 2.
    n.votes(&[1, 3], 1, 2, Prevote, Some(block(8)));
    assert_eq!(
        n.c.locked(),
        Some(RoundValue {
            round: 2,
            block_hash: block(8)
        })
    );

    // The same without the round-1 polka: L28 cannot fire, the proposal waits for L57.
    let mut m = Net::new();
    m.start(1);
    m.propose(1, 0, None, block(7), true);
    m.votes(&[1, 2], 1, 0, Prevote, Some(block(7)));
    m.next_round_via_nil_precommits(1, 0);
    m.timeout(1, 1, Step::Propose);
    m.votes(&[1, 2, 3], 1, 1, Prevote, None);
    m.next_round_via_nil_precommits(1, 1);
    let outs = m.propose(1, 2, Some(1), block(8), true);
    assert!(broadcast_votes(&outs).is_empty());
    let outs = m.timeout(1, 2, Step::Propose);
    assert_eq!(single_vote(&outs), (Prevote, 2, None));
}

/// L28-L32: a proof of lock older than our lock does not unlock us.
#[test]
fn l32_proof_of_lock_older_than_our_lock_gets_nil() {
    let mut n = Net::new();
    n.start(1);
    // Round 0: a polka for 8 (we prevote nil: no proposal).
    n.timeout(1, 0, Step::Propose);
    n.votes(&[1, 2, 3], 1, 0, Prevote, Some(block(8)));
    n.timeout(1, 0, Step::Prevote);
    n.next_round_via_nil_precommits(1, 0);
    // Round 1: we lock on 7.
    n.propose(1, 1, None, block(7), true);
    n.votes(&[1, 2], 1, 1, Prevote, Some(block(7)));
    assert_eq!(n.c.locked().map(|l| l.round), Some(1));
    n.next_round_via_nil_precommits(1, 1);
    // Round 2: 8 with validRound 0 < lockedRound 1: nil.
    let outs = n.propose(1, 2, Some(0), block(8), true);
    assert_eq!(single_vote(&outs), (Prevote, 2, None));
}

/// L47-L48 and L65-L67: 2f+1 precommits of any value schedule the precommit timeout;
/// when it fires, the next round starts.
#[test]
fn l65_precommit_timeout_starts_next_round() {
    let mut n = Net::new();
    n.start(1);
    n.timeout(1, 0, Step::Propose);
    let outs = n.votes(&[1, 2], 1, 0, Precommit, None);
    assert!(scheduled(&outs).is_empty());
    let outs = n.votes(&[3], 1, 0, Precommit, Some(block(3)));
    let t = scheduled(&outs);
    assert_eq!(
        (t[0].step, t[0].round, t[0].duration_ms),
        (Step::Precommit, 0, 400)
    );
    let outs = n.timeout(1, 0, Step::Precommit);
    assert_eq!(n.c.round(), Some(1));
    assert_eq!(n.c.step(), Some(Step::Propose));
    let t = scheduled(&outs);
    assert_eq!(
        (t[0].step, t[0].round, t[0].duration_ms),
        (Step::Propose, 1, 1500)
    );
}

/// L55-L56: messages from f+1 validators (more than a third of the power) for a higher
/// round make us skip to it; f of them do not.
#[test]
fn l55_round_skip_on_f_plus_one() {
    let mut n = Net::new();
    n.start(1);
    let outs = n.votes(&[2], 1, 5, Prevote, None);
    assert_eq!(
        n.c.round(),
        Some(0),
        "one validator is not more than a third"
    );
    assert!(scheduled(&outs).is_empty());
    let outs = n.votes(&[3], 1, 5, Precommit, Some(block(1)));
    assert_eq!(n.c.round(), Some(5));
    let t = scheduled(&outs);
    assert_eq!((t[0].step, t[0].round), (Step::Propose, 5));
}

/// L55 beyond the stored window: a flood of far-future votes from one (byzantine)
/// validator is not stored and does not move us; a second validator at a far round does.
#[test]
fn l55_far_future_flood_is_bounded_and_still_skips() {
    let mut n = Net::new();
    n.start(1);
    for r in 100..2_100u32 {
        let outs = n.votes(&[3], 1, r, Prevote, Some(block(9)));
        assert!(matches!(
            drops(&outs)[..],
            [ConsensusError::RoundTooFar { .. }]
        ));
    }
    assert_eq!(n.c.round(), Some(0));
    assert!(n.c.stored_items() < 10, "{}", n.c.stored_items());
    assert!(n.c.stored_items() <= Consensus::stored_items_bound(4));
    n.votes(&[2], 1, 500, Prevote, None);
    // Validators 2 (round 500) and 3 (round 2099) both reached round 500.
    assert_eq!(n.c.round(), Some(500));
}

/// L49-L54: 2f+1 precommits for a valid v in an earlier round decide v with that round,
/// whatever round we are in. The certificate verifies.
#[test]
fn l49_decide_from_an_earlier_round() {
    let mut n = Net::new();
    n.start(1);
    n.propose(1, 0, None, block(7), true);
    n.timeout(1, 0, Step::Propose);
    n.votes(&[1, 2, 3], 1, 0, Prevote, None); // nil polka: precommit nil
    n.next_round_via_nil_precommits(1, 0);
    n.timeout(1, 1, Step::Propose);
    n.votes(&[1, 2, 3], 1, 1, Prevote, None);
    assert_eq!(n.c.round(), Some(1));
    // Late precommits of round 0 for 7 from 1, 2 (who also sent nil precommits: they
    // equivocated) and 3.
    let outs = n.votes(&[1, 2, 3], 1, 0, Precommit, Some(block(7)));
    let d = decisions(&outs);
    assert_eq!(d.len(), 1);
    let (h, r, b, cert) = &d[0];
    assert_eq!((*h, *r, *b), (1, 0, block(7)));
    cert.verify(CHAIN, 1, &block(7), &n.set).unwrap();
    // Decided: the machine idles until the next height.
    assert!(n.timeout(1, 1, Step::Prevote).is_empty());
    assert_eq!(n.c.decision().map(|d| d.block_hash), Some(block(7)));
}

/// L49 without the proposal: the quorum's block is asked for validation (the node fetches
/// it), and the decision follows the answer. This is also how block sync works: a
/// certificate fed as votes.
#[test]
fn l49_decide_via_certificate_votes_asks_validity() {
    let mut n = Net::new();
    n.start(1);
    let votes: Vec<Vote> = [1, 2, 3]
        .iter()
        .map(|i| n.vote(*i, 1, 4, Precommit, Some(block(5))))
        .collect();
    let cert = CommitCertificate::from_votes(1, 4, block(5), &votes);
    let mut outs = Vec::new();
    for v in certificate_votes(&cert) {
        outs.extend(n.feed(Input::Vote(v)));
    }
    assert_eq!(validate_requests(&outs), vec![block(5)]);
    assert!(decisions(&outs).is_empty());
    let outs = n.feed(Input::BlockValidity {
        block_hash: block(5),
        valid: true,
    });
    let d = decisions(&outs);
    assert_eq!((d[0].0, d[0].1, d[0].2), (1, 4, block(5)));
    d[0].3.verify(CHAIN, 1, &block(5), &n.set).unwrap();
}

/// L13-L19: as proposer without a valid value we ask the node for a block, propose it,
/// and prevote it ourselves (L22).
#[test]
fn l17_proposer_requests_a_value_then_proposes() {
    let mut n = Net::new();
    n.start(1);
    for r in 0..3 {
        n.timeout(1, r, Step::Propose);
        n.votes(&[1, 2, 3], 1, r, Prevote, None);
        n.next_round_via_nil_precommits(1, r);
    }
    assert_eq!(n.set.proposer(1, 3).public_key, n.pk(0));
    // Entering round 3 asked for a value.
    let outs = n.feed(Input::ProposeValue {
        height: 1,
        round: 2,
        block_hash: block(4),
    });
    assert!(matches!(
        drops(&outs)[..],
        [ConsensusError::UnexpectedProposeValue { .. }]
    ));
    let outs = n.feed(Input::ProposeValue {
        height: 1,
        round: 3,
        block_hash: block(4),
    });
    let props = broadcast_proposals(&outs);
    assert_eq!(props.len(), 1);
    assert_eq!(
        (props[0].round, props[0].pol_round, props[0].block_hash),
        (3, None, block(4))
    );
    props[0].verify(CHAIN).unwrap();
    assert_eq!(single_vote(&outs), (Prevote, 3, Some(block(4))));
    // Only one proposal per round.
    let outs = n.feed(Input::ProposeValue {
        height: 1,
        round: 3,
        block_hash: block(5),
    });
    assert!(broadcast_proposals(&outs).is_empty());
}

/// L14-L15, L18: as proposer with a valid value we re-propose it with validRound, without
/// asking the node.
#[test]
fn l15_proposer_reproposes_valid_value_with_valid_round() {
    let mut n = Net::new();
    n.start(1);
    // Round 0: we see a polka for 7 after precommitting nil: validValue = 7, round 0.
    n.propose(1, 0, None, block(7), true);
    n.votes(&[1, 2], 1, 0, Prevote, None);
    n.timeout(1, 0, Step::Prevote);
    n.votes(&[1, 3], 1, 0, Prevote, Some(block(7)));
    assert_eq!(n.c.valid().map(|v| v.round), Some(0));
    n.next_round_via_nil_precommits(1, 0);
    let mut entering_round_3 = Vec::new();
    for r in 1..3 {
        n.timeout(1, r, Step::Propose);
        n.votes(&[1, 2, 3], 1, r, Prevote, None);
        entering_round_3 = n.next_round_via_nil_precommits(1, r);
    }
    // Entering round 3 (ours) proposed validValue with validRound 0 at once, without
    // asking the node, and prevoted it (L28: the polka of round 0 is known).
    assert!(
        !entering_round_3
            .iter()
            .any(|o| matches!(o, Output::RequestProposal { .. }))
    );
    let props = broadcast_proposals(&entering_round_3);
    assert_eq!(props.len(), 1);
    assert_eq!(
        (props[0].round, props[0].pol_round, props[0].block_hash),
        (3, Some(0), block(7))
    );
    let prevotes: Vec<Vote> = broadcast_votes(&entering_round_3)
        .into_iter()
        .filter(|v| v.round == 3)
        .collect();
    assert_eq!(prevotes.len(), 1);
    assert_eq!(prevotes[0].block_hash, Some(block(7)));
    // It is also what the node re-gossips.
    assert!(
        n.c.rebroadcast()
            .contains(&Message::Proposal(props[0].clone()))
    );
}

/// Signing safety: a validator restarted from its persisted state mid-height re-sends the
/// exact prevote it signed, never a different one, and keeps its lock.
#[test]
fn restart_mid_height_never_double_signs() {
    let mut n = Net::new();
    n.start(1);
    let outs = n.propose(1, 0, None, block(7), true);
    let signed = broadcast_votes(&outs)[0].clone();
    let state = persists(&outs).pop().unwrap();
    // Crash: the broadcast may or may not have left. Restart from the persisted state.
    let mut r = Net::with_restored(Some(state.clone()));
    let outs = r.start(1);
    assert_eq!(
        broadcast_votes(&outs),
        vec![signed.clone()],
        "re-sends the same prevote"
    );
    assert_eq!(r.c.step(), Some(Step::Prevote));
    // A conflicting proposal for the same round (the proposer equivocates) and the propose
    // timeout: nothing new is signed for (1, 0, prevote).
    let p = r.proposal(1, 1, 0, None, block(8));
    let outs = r.feed(Input::Proposal(p));
    assert!(broadcast_votes(&outs).is_empty());
    assert!(broadcast_votes(&r.timeout(1, 0, Step::Propose)).is_empty());
    // The machine continues normally from there. It lost the proposal it had received:
    // re-gossip brings it back (a second proposal for the round: the proposer equivocated).
    let outs = r.propose(1, 0, None, block(7), true);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Evidence(Evidence::DuplicateProposal { .. })))
    );
    assert!(broadcast_votes(&outs).is_empty());
    let outs = r.votes(&[1, 2], 1, 0, Prevote, Some(block(7)));
    assert_eq!(single_vote(&outs), (Precommit, 0, Some(block(7))));
    let locked_state = persists(&outs).pop().unwrap();
    assert_eq!(locked_state.locked.map(|l| l.block_hash), Some(block(7)));

    // Restart again, now locked: the lock survives, and round 1 gets nil for another value.
    let mut r2 = Net::with_restored(Some(locked_state));
    let outs = r2.start(1);
    assert_eq!(
        broadcast_votes(&outs).len(),
        2,
        "re-sends its prevote and precommit"
    );
    r2.next_round_via_nil_precommits(1, 0);
    let outs = r2.propose(1, 1, None, block(8), true);
    assert_eq!(single_vote(&outs), (Prevote, 1, None));
}

/// Signing safety at the watermark: a restarted machine that is asked (by a confused or
/// malicious node) to sign below its watermark refuses.
#[test]
fn restart_from_a_later_state_refuses_to_sign_lower() {
    let mut n = Net::new();
    n.start(1);
    let outs = n.propose(1, 0, None, block(7), true);
    let state = persists(&outs).pop().unwrap();
    // The node lost its block store and starts height 1 again, but with a state that says
    // it signed at height 1 round 0 prevote: it is resumed, so that is fine; now pretend
    // the state is from height 2 (the node restarts at height 1 behind its own signatures).
    let mut later = state.clone();
    later.height = 2;
    later.last_signed = Some(consensus::SignedStep {
        height: 2,
        round: 0,
        step: Step::Precommit,
    });
    later.signed.clear();
    let mut r = Net::with_restored(Some(later));
    r.start(1);
    let outs = r.propose(1, 0, None, block(7), true);
    assert!(broadcast_votes(&outs).is_empty());
    assert!(matches!(
        drops(&outs)[..],
        [ConsensusError::DoubleSignPrevented { .. }]
    ));
    // It still follows: the step moved on.
    assert_eq!(r.c.step(), Some(Step::Prevote));
}

/// A proposer restarted after signing its proposal re-sends that proposal and does not
/// ask for a new block.
#[test]
fn restarted_proposer_resends_its_proposal() {
    let mut n = Net::new();
    n.start(1);
    for r in 0..3 {
        n.timeout(1, r, Step::Propose);
        n.votes(&[1, 2, 3], 1, r, Prevote, None);
        n.next_round_via_nil_precommits(1, r);
    }
    let outs = n.feed(Input::ProposeValue {
        height: 1,
        round: 3,
        block_hash: block(4),
    });
    let proposal = broadcast_proposals(&outs)[0].clone();
    // The first Persist of the batch is the one written before the proposal left.
    let before_prevote = persists(&outs)[0].clone();
    let mut r = Net::with_restored(Some(before_prevote));
    let outs = r.start(1);
    assert_eq!(broadcast_proposals(&outs), vec![proposal]);
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::RequestProposal { .. }))
    );
    // It re-sends its nil votes of rounds 0-2 too (they may have been lost), then prevotes
    // its own proposal again (L22), which is a new signature.
    let votes = broadcast_votes(&outs);
    assert_eq!(votes.len(), 7);
    let last = votes.last().unwrap();
    assert_eq!(
        (last.vote_type, last.round, last.block_hash),
        (Prevote, 3, Some(block(4)))
    );
}

/// Equivocation: two validly signed conflicting votes (or proposals) of one validator for
/// one step produce evidence once; the evidence verifies.
#[test]
fn equivocation_produces_evidence_once() {
    let mut n = Net::new();
    n.start(1);
    let a = n.vote(2, 1, 0, Prevote, Some(block(1)));
    let b = n.vote(2, 1, 0, Prevote, None);
    let c = n.vote(2, 1, 0, Prevote, Some(block(3)));
    assert!(n.feed(Input::Vote(a.clone())).is_empty());
    let outs = n.feed(Input::Vote(b.clone()));
    let ev: Vec<&Evidence> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(*ev[0], Evidence::from_votes(a, b.clone()));
    ev[0].verify(CHAIN).unwrap();
    assert_eq!(
        ev[0].key(),
        EquivocationKey {
            validator: n.pk(2),
            height: 1,
            round: 0,
            step: 1
        }
    );
    let outs = n.feed(Input::Vote(c));
    assert!(matches!(
        drops(&outs)[..],
        [ConsensusError::EquivocationReported { .. }]
    ));
    assert!(matches!(
        drops(&n.feed(Input::Vote(b)))[..],
        [ConsensusError::Duplicate { .. }]
    ));

    let p1 = n.proposal(1, 1, 0, None, block(1));
    let p2 = n.proposal(1, 1, 0, None, block(2));
    n.feed(Input::Proposal(p1.clone()));
    let outs = n.feed(Input::Proposal(p2.clone()));
    assert!(outs.contains(&Output::Evidence(Evidence::from_proposals(p1, p2))));
}

/// Inputs that cannot be used are dropped with a reason, and never counted.
#[test]
fn drops_with_reasons() {
    let mut n = Net::new();
    let v = n.vote(1, 1, 0, Prevote, None);
    assert!(matches!(
        drops(&n.feed(Input::Vote(v)))[..],
        [ConsensusError::NotStarted]
    ));
    n.start(2);
    let stranger = SecretKey::from_seed(&[99; 32]);
    let cases: Vec<(Input, &str)> = vec![
        (
            Input::Vote(Vote::new_signed(CHAIN, 2, 0, Prevote, None, &stranger)),
            "unknown_validator",
        ),
        (Input::Vote(n.vote(1, 1, 0, Prevote, None)), "past_height"),
        (Input::Vote(n.vote(1, 4, 0, Prevote, None)), "future_height"),
        (
            Input::Vote({
                let mut v = n.vote(1, 2, 0, Prevote, None);
                v.signature.0[3] ^= 1;
                v
            }),
            "bad_signature",
        ),
        (
            Input::Vote(Vote::new_signed(
                "other-chain",
                2,
                0,
                Prevote,
                None,
                &n.keys[1],
            )),
            "bad_signature",
        ),
        (
            Input::Proposal(n.proposal(0, 2, 0, None, block(1))),
            "wrong_proposer",
        ),
        (
            Input::Proposal(n.proposal(2, 2, 0, Some(0), block(1))),
            "bad_pol_round",
        ),
        (
            Input::Vote(n.vote(1, 2, u32::MAX, Prevote, None)),
            "round_too_far",
        ),
        (
            Input::BlockValidity {
                block_hash: block(1),
                valid: true,
            },
            "unexpected_block_validity",
        ),
        (
            Input::StartHeight {
                height: 1,
                validators: n.set.clone(),
            },
            "stale_start_height",
        ),
    ];
    for (input, label) in cases {
        let outs = n.feed(input);
        let d = drops(&outs);
        assert_eq!(d.len(), 1, "{label}: {outs:?}");
        assert_eq!(d[0].label(), label, "{}", d[0]);
    }
    // A vote counted once; its copy is a duplicate.
    let v = n.vote(1, 2, 0, Prevote, None);
    assert!(n.feed(Input::Vote(v.clone())).is_empty());
    assert_eq!(drops(&n.feed(Input::Vote(v)))[0].label(), "duplicate");
}

/// Messages for the next height wait (bounded) for its StartHeight and are then counted.
#[test]
fn next_height_messages_are_buffered() {
    let mut n = Net::new();
    n.start(1);
    let p = n.proposal(3, 2, 0, None, block(2)); // proposer(2, 0) = validator 3
    assert!(n.feed(Input::Proposal(p)).is_empty());
    for i in 1..4 {
        let v = n.vote(i, 2, 0, Precommit, Some(block(2)));
        assert!(n.feed(Input::Vote(v)).is_empty());
    }
    let outs = n.start(2);
    assert_eq!(validate_requests(&outs), vec![block(2)]);
    let outs = n.feed(Input::BlockValidity {
        block_hash: block(2),
        valid: true,
    });
    assert_eq!(decisions(&outs).len(), 1);
}

/// A non-validator (no key) follows, decides with a valid certificate, and never persists
/// or broadcasts.
#[test]
fn non_validator_follows_and_decides() {
    let keys = keys_sorted(4);
    let set = set_of(&keys, &[1, 1, 1, 1]);
    let mut c = Consensus::new(CHAIN.into(), params(), None, None);
    let mut all = c.handle(Input::StartHeight {
        height: 1,
        validators: set.clone(),
    });
    all.extend(c.handle(Input::Proposal(Proposal::new_signed(
        CHAIN,
        1,
        0,
        None,
        block(7),
        &keys[1],
    ))));
    all.extend(c.handle(Input::BlockValidity {
        block_hash: block(7),
        valid: true,
    }));
    for t in [Prevote, Precommit] {
        for k in &keys[1..] {
            all.extend(c.handle(Input::Vote(Vote::new_signed(
                CHAIN,
                1,
                0,
                t,
                Some(block(7)),
                k,
            ))));
        }
    }
    assert!(
        !all.iter()
            .any(|o| matches!(o, Output::Persist(_) | Output::Broadcast(_)))
    );
    let d = decisions(&all);
    assert_eq!(d.len(), 1);
    d[0].3.verify(CHAIN, 1, &block(7), &set).unwrap();
}

/// Unequal power: the quorum is by power, not by count. With powers 5, 1, 1, 1 the heavy
/// validator and one other hold 6 of 8 (> 2/3), and two light validators plus us do not.
#[test]
fn quorums_count_power() {
    let keys = keys_sorted(4);
    let set = set_of(&keys, &[1, 5, 1, 1]);
    let mut c = Consensus::new(CHAIN.into(), params(), Some(keys[0].clone()), None);
    c.handle(Input::StartHeight {
        height: 1,
        validators: set.clone(),
    });
    c.handle(Input::TimeoutElapsed(Timeout {
        height: 1,
        round: 0,
        step: Step::Propose,
        duration_ms: 0,
    }));
    let outs = c.handle(Input::Vote(Vote::new_signed(
        CHAIN, 1, 0, Prevote, None, &keys[2],
    )));
    assert!(broadcast_votes(&outs).is_empty(), "3 of 8 is not a quorum");
    let outs = c.handle(Input::Vote(Vote::new_signed(
        CHAIN, 1, 0, Prevote, None, &keys[1],
    )));
    assert_eq!(single_vote(&outs), (Precommit, 0, None));
}

/// The machine never panics and its memory stays bounded, whatever the inputs: random
/// (mostly wrong) inputs for many steps.
#[test]
fn arbitrary_inputs_never_panic_and_memory_stays_bounded() {
    let keys = keys_sorted(4);
    let set = set_of(&keys, &[1, 2, 3, 1]);
    let stranger = SecretKey::from_seed(&[77; 32]);
    let mut rng = Rng::new(2024);
    let mut c = Consensus::new(CHAIN.into(), params(), Some(keys[0].clone()), None);
    let bound = Consensus::stored_items_bound(4);
    let heights = [0u64, 1, 2, 3, u64::MAX];
    let rounds = [0u32, 1, 2, 7, 8, 9, 30, u32::MAX - 1, u32::MAX];
    let mut max_stored = 0;
    for step in 0..60_000u32 {
        let h = heights[rng.below(heights.len() as u64) as usize];
        let r = if rng.chance(0.7) {
            c.round().unwrap_or(0).saturating_add(rng.below(3) as u32)
        } else {
            rounds[rng.below(rounds.len() as u64) as usize]
        };
        let h = if rng.chance(0.7) {
            c.height().unwrap_or(1)
        } else {
            h
        };
        let b = if rng.chance(0.3) {
            None
        } else {
            Some(block(rng.below(4) as u8))
        };
        let key = if rng.chance(0.05) {
            &stranger
        } else {
            &keys[rng.below(4) as usize]
        };
        let t = if rng.chance(0.5) { Prevote } else { Precommit };
        let input = match rng.below(10) {
            0 => Input::StartHeight {
                height: h,
                validators: set.clone(),
            },
            1 | 2 => {
                let pol = if rng.chance(0.5) {
                    None
                } else {
                    Some(rng.below(u64::from(r) + 2) as u32)
                };
                Input::Proposal(Proposal::new_signed(
                    CHAIN,
                    h,
                    r,
                    pol,
                    b.unwrap_or(block(0)),
                    key,
                ))
            }
            3 => Input::BlockValidity {
                block_hash: block(rng.below(4) as u8),
                valid: rng.chance(0.8),
            },
            4 => Input::ProposeValue {
                height: h,
                round: r,
                block_hash: block(rng.below(4) as u8),
            },
            5 => Input::TimeoutElapsed(Timeout {
                height: h,
                round: r,
                step: [Step::Propose, Step::Prevote, Step::Precommit][rng.below(3) as usize],
                duration_ms: 0,
            }),
            _ => {
                let mut v = Vote::new_signed(CHAIN, h, r, t, b, key);
                if rng.chance(0.05) {
                    v.signature.0[9] ^= 4;
                }
                Input::Vote(v)
            }
        };
        let outs = c.handle(input);
        assert_persist_before_broadcast(&outs);
        max_stored = max_stored.max(c.stored_items());
        assert!(
            c.stored_items() <= bound,
            "step {step}: {} > {bound}",
            c.stored_items()
        );
    }
    assert!(max_stored > 0);
}
