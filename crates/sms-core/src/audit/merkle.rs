//! The Merkle tree over the entries' leaf hashes, hashed as RFC 6962 §2.1 (node prefix 0x01;
//! the leaves are already `SHA-256(0x00 ‖ entry)`), with audit paths and their check.

use sha2::{Digest, Sha256};

use super::Hash;

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of the tree over `leaves` (leaf hashes); `SHA-256("")` for no leaf.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [only] => *only,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves`, leaf side first; `None` when
/// `index` is not a leaf.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(leaves, index, &mut path);
    Some(path)
}

fn collect_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if index < k {
        collect_path(left, index, path);
        path.push(merkle_root(right));
    } else {
        collect_path(right, index - k, path);
        path.push(merkle_root(left));
    }
}

/// Whether `path` proves leaf `leaf` at `index` in a tree of `size` leaves with root `root`
/// (the check of RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first. Gives
/// the root of every prefix in O(log n) memory, so the head signer reads each entry once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the next leaf.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut n = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree of the new leaf's size.
        while n & 1 == 1 {
            match self.stack.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                None => break,
            }
            n >>= 1;
        }
        self.stack.push(carry);
        self.size += 1;
    }

    /// The root of the tree over every leaf pushed (RFC 6962: the right subtrees are folded in
    /// from the smallest).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return merkle_root(&[]);
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}
