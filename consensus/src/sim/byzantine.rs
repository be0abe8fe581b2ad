//! Byzantine behaviours: the equivocator (two proposals, double votes, invalid blocks)
//! and the garbage sender. The silent validator simply never runs.

use super::world::{CHAIN_ID, Packet, World};
use crate::io::Message;
use ledger::{Hash, Proposal, Vote, VoteType};

/// Kinds of garbage, one drawn per message.
const GARBAGE_KINDS: u64 = 12;
/// Garbage messages per gossip tick.
const GARBAGE_PER_TICK: usize = 3;
/// Far-future votes per "flood" garbage message.
const FLOOD_VOTES: u32 = 8;

impl World {
    /// An equivocator's broadcast: often signs a conflicting twin of the message and sends
    /// the original to some peers, the twin to others, and both to a few.
    pub(crate) fn equivocate(&mut self, node: usize, m: Message) {
        if !self.rng.chance(self.plan.equivocate_prob) {
            self.send_all(node, &Packet::Consensus(m));
            return;
        }
        let twin = match &m {
            Message::Vote(v) => {
                let other = match v.block_hash {
                    Some(_) if v.vote_type == VoteType::Precommit || self.rng.chance(0.5) => None,
                    _ => {
                        let valid = self.rng.chance(0.5);
                        Some(self.make_block(node, v.height, v.round, valid))
                    }
                };
                let key = &self.nodes[node].key;
                Message::Vote(Vote::new_signed(
                    CHAIN_ID,
                    v.height,
                    v.round,
                    v.vote_type,
                    other,
                    key,
                ))
            }
            Message::Proposal(p) => {
                let valid = !self.rng.chance(self.plan.invalid_block_prob);
                let other = self.make_block(node, p.height, p.round, valid);
                let key = &self.nodes[node].key;
                // Without a proof of lock, whatever the original had: only the locks of
                // honest validators stop it once a block may have been decided.
                Message::Proposal(Proposal::new_signed(
                    CHAIN_ID, p.height, p.round, None, other, key,
                ))
            }
        };
        // The attack on locking: a precommit for the block to one peer only (which may then
        // decide) and nil to everyone else (who move to the next round, where only their
        // locks stop them from deciding another block).
        if let Message::Vote(v) = &m
            && v.vote_type == VoteType::Precommit
            && v.block_hash.is_some()
            && self.rng.chance(0.5)
        {
            let lucky = self.rng.below(self.nodes.len() as u64) as usize;
            for to in (0..self.nodes.len()).filter(|t| *t != node) {
                let msg = if to == lucky { &m } else { &twin };
                self.send(node, to, Packet::Consensus(msg.clone()));
            }
            return;
        }
        for to in 0..self.nodes.len() {
            if to == node {
                continue;
            }
            match self.rng.below(5) {
                0 | 1 => self.send(node, to, Packet::Consensus(m.clone())),
                2 | 3 => self.send(node, to, Packet::Consensus(twin.clone())),
                _ => {
                    let (a, b) = if self.rng.chance(0.5) {
                        (&m, &twin)
                    } else {
                        (&twin, &m)
                    };
                    self.send(node, to, Packet::Consensus(a.clone()));
                    self.send(node, to, Packet::Consensus(b.clone()));
                }
            }
        }
    }

    /// A garbage sender's gossip tick: structurally wrong messages to every peer.
    pub(crate) fn send_garbage(&mut self, node: usize) {
        let height = self.nodes[node].observed_height();
        for _ in 0..GARBAGE_PER_TICK {
            for m in self.garbage(node, height) {
                self.send_all(node, &Packet::Consensus(m));
            }
        }
    }

    fn random_hash(&mut self) -> Hash {
        let mut h = [0u8; 32];
        for chunk in h.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        Hash(h)
    }

    fn garbage(&mut self, node: usize, height: u64) -> Vec<Message> {
        let kind = self.rng.below(GARBAGE_KINDS);
        let round = self.rng.below(3) as u32;
        let vote_type = if self.rng.chance(0.5) {
            VoteType::Prevote
        } else {
            VoteType::Precommit
        };
        let hash = self.random_hash();
        let block = Some(hash);
        let key = self.nodes[node].key.clone();
        let vote = |h: u64, r: u32, b: Option<Hash>| {
            Message::Vote(Vote::new_signed(CHAIN_ID, h, r, vote_type, b, &key))
        };
        match kind {
            // A bad signature.
            0 => {
                let mut v = Vote::new_signed(CHAIN_ID, height, round, vote_type, block, &key);
                v.signature.0[0] ^= 1;
                vec![Message::Vote(v)]
            }
            // A key that is not a validator.
            1 => vec![Message::Vote(Vote::new_signed(
                CHAIN_ID,
                height,
                round,
                vote_type,
                block,
                &self.unknown_key,
            ))],
            // A past height.
            2 => vec![vote(height.saturating_sub(1), round, block)],
            // A future height beyond the next one.
            3 => {
                let ahead = self.rng.range(2, 5);
                vec![vote(height + ahead, round, block)]
            }
            // A flood of far-future rounds (memory bound; counts for L55 only).
            4 => (0..FLOOD_VOTES)
                .map(|_| {
                    let r = 20 + self.rng.below(1_000_000) as u32;
                    vote(height, r, block)
                })
                .collect(),
            // A proposal out of turn (or, if it is the proposer, of a block nobody built).
            5 => vec![Message::Proposal(Proposal::new_signed(
                CHAIN_ID, height, round, None, hash, &key,
            ))],
            // A proof-of-lock round that is not below the round.
            6 => vec![Message::Proposal(Proposal::new_signed(
                CHAIN_ID,
                height,
                round,
                Some(round),
                hash,
                &key,
            ))],
            // Impersonation: another validator's key, our signature.
            7 => {
                let victim = self.rng.below(self.nodes.len() as u64) as usize;
                let mut v = Vote::new_signed(CHAIN_ID, height, round, vote_type, block, &key);
                v.validator = self.nodes[victim].public_key;
                vec![Message::Vote(v)]
            }
            // Signed for another chain.
            8 => vec![Message::Vote(Vote::new_signed(
                "another-chain",
                height,
                round,
                vote_type,
                block,
                &key,
            ))],
            // The largest round.
            9 => vec![vote(height, u32::MAX, block)],
            // Next-height messages with bad signatures (fill the next-height buffer).
            10 => (0..4)
                .map(|_| {
                    let mut v =
                        Vote::new_signed(CHAIN_ID, height + 1, round, vote_type, block, &key);
                    v.signature.0[1] ^= 0x80;
                    Message::Vote(v)
                })
                .collect(),
            // A real, arbitrary vote: votes of this validator for random values (so it
            // equivocates too, and honest validators must report it).
            _ => {
                let b = if self.rng.chance(0.3) { None } else { block };
                vec![vote(height, round, b)]
            }
        }
    }
}
