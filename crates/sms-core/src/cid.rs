//! IPFS content identifiers: parsing, and checking that bytes received from an untrusted
//! gateway are the content a CID names (docs/bulk-processing.md, "CIDs the SMS verifies").
//!
//! Supported: CIDv0 (`Qm…`) and CIDv1 with multibase `b` (base32) or `z` (base58btc), hash
//! sha2-256, codec raw (the bytes themselves) or dag-pb (a UnixFS file as kubo's `add` builds
//! it by default: 256 KiB chunks, balanced tree of at most 174 links, leaves either UnixFS
//! `File` nodes or raw blocks). Everything else is refused, never guessed.

use std::fmt;

use thiserror::Error;

use crate::hash::sha256;

/// Multicodec of raw bytes.
const CODEC_RAW: u64 = 0x55;
/// Multicodec of dag-pb (protobuf merkledag nodes).
const CODEC_DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256.
const MH_SHA2_256: u64 = 0x12;
/// kubo's default chunk size (`size-262144`).
pub const UNIXFS_CHUNK_SIZE: usize = 256 * 1024;
/// kubo's default maximum number of links of a balanced-layout node.
pub const UNIXFS_MAX_LINKS: usize = 174;
/// Longest CID text accepted (a CIDv1 base32 sha2-256 is 59 characters).
const MAX_CID_TEXT: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw,
    DagPb,
}

/// A parsed CID with a sha2-256 digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Cid {
    version: u8,
    codec: Codec,
    digest: [u8; 32],
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CidError {
    #[error("'{0}' is not a CID: {1}")]
    Malformed(String, &'static str),
    #[error("CID '{0}' is not supported: {1}")]
    Unsupported(String, String),
    #[error("the bytes received ({len} bytes) do not hash to CID {cid}")]
    Mismatch { cid: String, len: usize },
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({})", self.text)
    }
}

impl Cid {
    /// Parses a bare CID (no `/ipfs/` prefix, no path).
    pub fn parse(text: &str) -> Result<Self, CidError> {
        let shown: String = text.chars().take(80).collect();
        let malformed = |why| CidError::Malformed(shown.clone(), why);
        let unsupported = |why: String| CidError::Unsupported(shown.clone(), why);
        if text.is_empty() || text.len() > MAX_CID_TEXT {
            return Err(malformed("empty or too long"));
        }
        if text.len() == 46 && text.starts_with("Qm") {
            let bytes = base58_decode(text).ok_or_else(|| malformed("invalid base58"))?;
            let digest = sha256_multihash(&bytes)
                .map_err(|why| unsupported(format!("CIDv0 multihash: {why}")))?;
            return Ok(Self {
                version: 0,
                codec: Codec::DagPb,
                digest,
                text: text.to_owned(),
            });
        }
        let (base, rest) = text.split_at(1);
        let bytes = match base {
            "b" => base32_decode(rest).ok_or_else(|| malformed("invalid base32"))?,
            "z" => base58_decode(rest).ok_or_else(|| malformed("invalid base58"))?,
            _ => {
                return Err(unsupported(format!(
                    "multibase '{base}' (only CIDv0, 'b' base32 and 'z' base58btc)"
                )));
            }
        };
        let mut input = bytes.as_slice();
        let version = read_varint(&mut input).ok_or_else(|| malformed("truncated version"))?;
        if version != 1 {
            return Err(unsupported(format!("CID version {version}")));
        }
        let codec = match read_varint(&mut input).ok_or_else(|| malformed("truncated codec"))? {
            CODEC_RAW => Codec::Raw,
            CODEC_DAG_PB => Codec::DagPb,
            other => return Err(unsupported(format!("codec 0x{other:x} (only raw, dag-pb)"))),
        };
        let digest =
            sha256_multihash(input).map_err(|why| unsupported(format!("multihash: {why}")))?;
        Ok(Self {
            version: 1,
            codec,
            digest,
            text: text.to_owned(),
        })
    }

    pub fn version(&self) -> u8 {
        self.version
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Ok when `content` is what this CID names (see the module documentation).
    pub fn verify(&self, content: &[u8]) -> Result<(), CidError> {
        let matches = match self.codec {
            Codec::Raw => sha256(content).0 == self.digest,
            Codec::DagPb => [LeafKind::UnixFs, LeafKind::Raw].into_iter().any(|leaves| {
                unixfs_balanced_root(content, self.version, leaves)
                    .is_some_and(|root| sha256(&root).0 == self.digest)
            }),
        };
        if matches {
            Ok(())
        } else {
            Err(CidError::Mismatch {
                cid: self.text.clone(),
                len: content.len(),
            })
        }
    }
}

/// The CIDv0 (`Qm…`) kubo's `add` gives `content` with its defaults (what the iExec SDK
/// uploads bulk documents with).
pub fn cid_v0(content: &[u8]) -> String {
    let root = unixfs_balanced_root(content, 0, LeafKind::UnixFs).unwrap_or_default();
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(sha256(&root).as_slice());
    base58_encode(&multihash)
}

/// `0x12 0x20 <32 bytes>` exactly.
fn sha256_multihash(bytes: &[u8]) -> Result<[u8; 32], String> {
    let mut input = bytes;
    let code = read_varint(&mut input).ok_or("truncated")?;
    if code != MH_SHA2_256 {
        return Err(format!("hash function 0x{code:x} (only sha2-256)"));
    }
    let len = read_varint(&mut input).ok_or("truncated")?;
    if len != 32 || input.len() != 32 {
        return Err(format!("digest of {} bytes (sha2-256 has 32)", input.len()));
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(input);
    Ok(digest)
}

/// Unsigned LEB128 (multiformats varint), at most 9 bytes.
pub fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Bitcoin-alphabet base58 (each leading zero byte becomes `1`).
pub fn base58_encode(input: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::with_capacity(input.len() * 138 / 100 + 1);
    for &byte in input {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = input.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(
            digits
                .iter()
                .rev()
                .map(|&d| char::from(BASE58_ALPHABET[usize::from(d)])),
        )
        .collect()
}

/// Bitcoin-alphabet base58 (each leading `1` is a zero byte).
fn base58_decode(text: &str) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for c in text.bytes() {
        let mut carry = BASE58_ALPHABET.iter().position(|&a| a == c)? as u32;
        for byte in out.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut full = vec![0u8; zeros];
    full.extend(out.into_iter().skip_while(|&b| b == 0));
    Some(full)
}

/// RFC 4648 base32, lowercase, no padding (multibase `b`).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding shorter than one character.
    (bits < 5 && buffer == 0).then_some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKind {
    /// dag-pb node holding UnixFS `File` data (kubo's CIDv0 default).
    UnixFs,
    /// The chunk itself, linked as a CIDv1 raw block (kubo's CIDv1 default, `--raw-leaves`).
    Raw,
}

/// A built node: its CID bytes as a parent links it, its encoded block, the file bytes below
/// it and its cumulative size (block plus everything below, dag-pb's `Tsize`).
struct Built {
    cid: Vec<u8>,
    block: Vec<u8>,
    file_size: u64,
    tsize: u64,
}

fn cid_bytes(version: u8, codec: u64, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36);
    if version == 1 || codec == CODEC_RAW {
        write_varint(&mut out, 1);
        write_varint(&mut out, codec);
    }
    out.extend_from_slice(&[0x12, 0x20]);
    out.extend_from_slice(sha256(block).as_slice());
    out
}

fn field_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn field_varint(out: &mut Vec<u8>, field: u8, value: u64) {
    out.push(field << 3);
    write_varint(out, value);
}

/// UnixFS `Data` of a file node: type File, data (leaves), filesize, blocksizes (inner nodes).
fn unixfs_file(data: Option<&[u8]>, file_size: u64, block_sizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    field_varint(&mut out, 1, 2);
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        field_bytes(&mut out, 2, d);
    }
    field_varint(&mut out, 3, file_size);
    for size in block_sizes {
        field_varint(&mut out, 4, *size);
    }
    out
}

/// A dag-pb node: links first (field 2: hash, empty name, tsize), then data (field 1).
fn dag_pb(links: &[Built], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for child in links {
        let mut link = Vec::new();
        field_bytes(&mut link, 1, &child.cid);
        field_bytes(&mut link, 2, b"");
        field_varint(&mut link, 3, child.tsize);
        field_bytes(&mut out, 2, &link);
    }
    field_bytes(&mut out, 1, data);
    out
}

fn leaf(chunk: &[u8], version: u8, kind: LeafKind) -> Built {
    match kind {
        LeafKind::Raw => Built {
            cid: cid_bytes(1, CODEC_RAW, chunk),
            block: chunk.to_vec(),
            file_size: chunk.len() as u64,
            tsize: chunk.len() as u64,
        },
        LeafKind::UnixFs => {
            let block = dag_pb(&[], &unixfs_file(Some(chunk), chunk.len() as u64, &[]));
            Built {
                cid: cid_bytes(version, CODEC_DAG_PB, &block),
                tsize: block.len() as u64,
                file_size: chunk.len() as u64,
                block,
            }
        }
    }
}

fn inner(children: Vec<Built>, version: u8) -> Built {
    let sizes: Vec<u64> = children.iter().map(|c| c.file_size).collect();
    let file_size = sizes.iter().sum();
    let block = dag_pb(&children, &unixfs_file(None, file_size, &sizes));
    let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    Built {
        cid: cid_bytes(version, CODEC_DAG_PB, &block),
        block,
        file_size,
        tsize,
    }
}

/// The root block of `content` added as a balanced UnixFS file, or `None` when that root would
/// be a raw block (a one-chunk file with raw leaves has a raw CID, not a dag-pb one).
fn unixfs_balanced_root(content: &[u8], version: u8, kind: LeafKind) -> Option<Vec<u8>> {
    let mut level: Vec<Built> = if content.is_empty() {
        vec![leaf(&[], version, kind)]
    } else {
        content
            .chunks(UNIXFS_CHUNK_SIZE)
            .map(|chunk| leaf(chunk, version, kind))
            .collect()
    };
    if level.len() == 1 {
        return (kind == LeafKind::UnixFs).then(|| level.remove(0).block);
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(UNIXFS_MAX_LINKS));
        let mut rest = level.into_iter().peekable();
        while rest.peek().is_some() {
            let group: Vec<Built> = rest.by_ref().take(UNIXFS_MAX_LINKS).collect();
            next.push(inner(group, version));
        }
        level = next;
    }
    level.pop().map(|root| root.block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_v0() {
        let cid = Cid::parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o").unwrap();
        assert_eq!((cid.version(), cid.codec()), (0, Codec::DagPb));
        cid.verify(b"hello world\n").unwrap();
        assert!(matches!(
            cid.verify(b"hello world!"),
            Err(CidError::Mismatch { len: 12, .. })
        ));
    }

    /// Bytes `(i * 31 + 7) % 251`; CIDs computed with ipfs-unixfs-importer 17.1.1, profile
    /// `unixfs-v0-2015` (kubo's defaults), with the options named.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
    }

    #[test]
    fn importer_vectors() {
        let cases: [(usize, &str); 7] = [
            (1000, "Qmeg4t1d1Smno7xVHW3AWmtmjU3ouXvCiLegmHdQztLGmY"),
            (300_000, "QmR9BAE3mzYhqgJ5eoHLYPV91oG8EcsUutiv8FW2QtyL1t"),
            (1_048_576, "QmfP6GjfZnzRi5Lj1AYF4HurNVhebyeRvCdDnd8VVeCP32"),
            // rawLeaves: true with CIDv0.
            (300_000, "QmTLrfGVrrxwBuiyKVa6Z3YNqxzvMHvGTVo5ofvs3iJbz3"),
            // cidVersion 1, rawLeaves true (raw CID for one chunk, dag-pb above).
            (
                1000,
                "bafkreiaaqve5st5hdz5ausb5qq4a2bnjeoslddtzxipyvdo2zerzk3js54",
            ),
            (
                300_000,
                "bafybeickk7zj5wl6ltao3ejheup4ds2eizl65fqq3rvkoe5yzdz2rdjcfq",
            ),
            // cidVersion 1, rawLeaves false.
            (
                300_000,
                "bafybeifwegmb6h72lvkbpeoa3y4ju2g7jz734ltgytqd64pwuh65hbyxai",
            ),
        ];
        for (len, text) in cases {
            let cid = Cid::parse(text).unwrap();
            let content = pattern(len);
            cid.verify(&content)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut tampered = content.clone();
            tampered[len / 2] ^= 1;
            assert!(cid.verify(&tampered).is_err(), "{text}");
            assert!(cid.verify(&content[..len - 1]).is_err(), "{text}");
        }
    }

    /// Two levels of inner nodes (176 chunks, more than 174 links).
    #[test]
    fn importer_vector_two_levels() {
        Cid::parse("QmebrsGSmvWR16GyZeJsT7zDFJQ1vSczJ14hZJTUAwgCHv")
            .unwrap()
            .verify(&pattern(46_000_000))
            .unwrap();
    }

    #[test]
    fn empty_file_v0() {
        Cid::parse("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
            .unwrap()
            .verify(b"")
            .unwrap();
    }

    #[test]
    fn malformed_and_unsupported() {
        for bad in [
            "",
            "Qm0000000000000000000000000000000000000000000000",
            "not a cid",
        ] {
            assert!(Cid::parse(bad).is_err(), "{bad}");
        }
        // base16 multibase, and a CIDv1 with an identity hash.
        assert!(matches!(
            Cid::parse("f01551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
            Err(CidError::Unsupported(..))
        ));
        assert!(matches!(
            Cid::parse("bafkqaaa"),
            Err(CidError::Unsupported(..))
        ));
        assert!(Cid::parse(&"b".repeat(200)).is_err());
    }

    #[test]
    fn varint_and_bases_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(read_varint(&mut out.as_slice()), Some(v));
        }
        assert_eq!(base58_decode("1112").unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(base58_encode(&[0, 0, 0, 1]), "1112");
        assert_eq!(base58_encode(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(
            cid_v0(b"hello world\n"),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        );
        assert_eq!(
            cid_v0(&pattern(300_000)),
            "QmR9BAE3mzYhqgJ5eoHLYPV91oG8EcsUutiv8FW2QtyL1t"
        );
        assert_eq!(base32_decode("mzxw6").unwrap(), b"foo");
        assert_eq!(base32_decode("mzxw6y"), None);
    }
}
