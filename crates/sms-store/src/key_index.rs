//! The key index of the SQLite backend: which record keys exist, held in memory so that
//! existence checks never reach the database (the writer keeps it, `sqlite.rs`).
//!
//! A key is kept as a 128-bit fingerprint, SipHash-1-3 keyed with 128 random bits drawn at
//! start-up, in flat hash tables (16 bytes a key, no allocation per key): with boxed strings,
//! 1,000,000 keys were 1,000,000 heap blocks, each lookup read the table then the block, and
//! mimalloc's page search grew with the heap (`sms bench --scenario scale`, BENCHMARKS.md).
//!
//! Exactness: an absent key is never reported present unless its fingerprint equals a stored
//! key's. The fingerprint is a keyed PRF whose key never leaves the process, so a client cannot
//! aim at a collision; by chance, one check against n stored keys errs with probability
//! n / 2^128 (3 · 10^-33 for 10^6 keys), and deleting one of two colliding keys would hide the
//! other with probability below n² / 2^129. Both are far below the odds of a memory fault
//! (ARCHITECTURE.md, "SQLite specifics").

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;
use std::sync::atomic::AtomicBool;

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::RecordKey;

/// Tables of the index, chosen by the fingerprint's top bits: a lookup locks one of them for
/// reading (checks of different keys on different cores do not share a lock word), and growth
/// rehashes 1/64 of the keys at a time.
const SHARDS: usize = 64;

/// The fingerprint is uniformly distributed already: its low 64 bits are the table hash.
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, fingerprint: u128) {
        self.0 = fingerprint as u64;
    }
}

type Table = HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// The fingerprints of every live record key.
pub(crate) struct KeyIndex {
    shards: Box<[RwLock<Table>]>,
    secret: (u64, u64),
    /// Set once every stored key has been read in; until then the database answers.
    pub(crate) loaded: AtomicBool,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            secret: (rand::random(), rand::random()),
            loaded: AtomicBool::new(false),
        }
    }
}

/// The writer's form of a key: namespace, owner and name joined by NUL bytes (no part holds
/// one: the server refuses them and PostgreSQL cannot store them).
pub(crate) fn index_key(namespace: &str, owner: &str, name: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + owner.len() + name.len() + 2);
    for (i, part) in [namespace, owner, name].into_iter().enumerate() {
        if i > 0 {
            k.push('\0');
        }
        k.push_str(part);
    }
    k
}

impl KeyIndex {
    /// The fingerprint of the bytes `parts` joined (SipHash is a stream: the parts hash as
    /// their concatenation, so a lookup needs no joined copy).
    fn fingerprint<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.secret.0, self.secret.1);
        for part in parts {
            h.write(part);
        }
        h.finish128().as_u128()
    }

    fn shard(&self, fingerprint: u128) -> &RwLock<Table> {
        // Top bits: the table hash uses the low ones.
        &self.shards[(fingerprint >> 122) as usize % SHARDS]
    }

    /// Whether `key` exists; `None` while the index is still loading.
    pub(crate) fn contains(&self, key: &RecordKey) -> Option<bool> {
        if !self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let f = self.fingerprint([
            key.namespace.as_bytes(),
            b"\0",
            key.owner.as_bytes(),
            b"\0",
            key.name.as_bytes(),
        ]);
        self.shard(f).read().ok().map(|table| table.contains(&f))
    }

    /// Adds (`true`) or removes (`false`) keys in [`index_key`] form.
    pub(crate) fn apply(&self, changes: Vec<(bool, String)>) {
        for (present, k) in changes {
            let f = self.fingerprint([k.as_bytes()]);
            let Ok(mut table) = self.shard(f).write() else {
                continue;
            };
            if present {
                table.insert(f);
            } else {
                table.remove(&f);
            }
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map_or(0, |t| t.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::Ordering;

    use super::*;

    fn key(ns: &str, owner: &str, name: &str) -> RecordKey {
        RecordKey {
            namespace: ns.into(),
            owner: owner.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_lookup_finds_exactly_the_keys_the_writer_added() {
        let index = KeyIndex::default();
        let a = key("requester", "0xaa", "one");
        assert_eq!(index.contains(&a), None, "not loaded yet");
        index.loaded.store(true, Ordering::Release);
        index.apply(vec![(true, index_key("requester", "0xaa", "one"))]);
        assert_eq!(index.contains(&a), Some(true));
        // Same bytes, other split: the separator keeps the parts apart.
        assert_eq!(index.contains(&key("requester", "0xaa", "on")), Some(false));
        assert_eq!(
            index.contains(&key("requester", "0xa", "aone")),
            Some(false)
        );
        assert_eq!(index.contains(&key("app", "0xaa", "one")), Some(false));
        index.apply(vec![
            (true, index_key("requester", "0xaa", "two")),
            (false, index_key("requester", "0xaa", "one")),
        ]);
        assert_eq!(index.contains(&a), Some(false));
        assert_eq!(index.contains(&key("requester", "0xaa", "two")), Some(true));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn fingerprints_are_keyed_per_index() {
        let (a, b) = (KeyIndex::default(), KeyIndex::default());
        let parts: [&[u8]; 1] = [b"requester\x000xaa\x00one"];
        assert_ne!(a.fingerprint(parts), b.fingerprint(parts));
        assert_eq!(
            a.fingerprint(parts),
            a.fingerprint([&b"requester\x00"[..], b"0xaa\x00", b"one"])
        );
    }

    #[test]
    fn many_keys_spread_over_the_shards() {
        let index = KeyIndex::default();
        index.apply(
            (0..10_000)
                .map(|i| (true, index_key("requester", "0xaa", &format!("k{i}"))))
                .collect(),
        );
        assert_eq!(index.len(), 10_000);
        let used = index
            .shards
            .iter()
            .filter(|s| !s.read().unwrap().is_empty())
            .count();
        assert_eq!(used, SHARDS);
    }
}
