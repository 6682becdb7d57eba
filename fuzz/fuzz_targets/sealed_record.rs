//! Sealed records as read back from the database (a row an attacker with database access can
//! write): `KeyRing::open_row` with a fixed master key and data key, the data-key unwrap, and
//! the master key text (`MasterKey::from_base64`). A row that opens must be the row sealed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use sms_store::crypto::{KeyRing, MasterKey, fuzzing, seal_format, wrap_format};
use sms_store::{RecordKey, SealedRow, WrappedDataKey};

const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Fixture {
    ring: KeyRing,
    sealed: SealedRow,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let master = MasterKey::from_base64(MASTER).expect("fixed master key");
        let ring = fuzzing::ring(
            master,
            &[
                (1, wrap_format::LEGACY, [1; 32]),
                (2, wrap_format::VERSIONED, [2; 32]),
            ],
        )
        .expect("fixed ring");
        let key = RecordKey::new("web2", "0x00000000000000000000000000000000000000aa", "name");
        let sealed = fuzzing::seal(&ring, 2, &key, 3, [7; 12], b"value").expect("seals");
        Fixture { ring, sealed }
    })
}

#[derive(Debug)]
struct Row {
    /// Start from the sealed row and replace only the fields set.
    from_sealed: bool,
    namespace: Option<String>,
    owner: Option<String>,
    name: Option<String>,
    key_id: Option<i64>,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    /// Bytes XORed into the sealed ciphertext.
    flip: Vec<u8>,
    version: Option<i64>,
    seal_format: Option<i64>,
    data_key: Option<(i64, Vec<u8>, Vec<u8>, i64)>,
    master_text: Option<String>,
}

impl Row {
    fn take(u: &mut Unstructured) -> arbitrary::Result<Self> {
        Ok(Self {
            from_sealed: u.arbitrary()?,
            namespace: u.arbitrary()?,
            owner: u.arbitrary()?,
            name: u.arbitrary()?,
            key_id: u.arbitrary()?,
            nonce: u.arbitrary()?,
            ciphertext: u.arbitrary()?,
            flip: u.arbitrary()?,
            version: u.arbitrary()?,
            seal_format: u.arbitrary()?,
            data_key: u.arbitrary()?,
            master_text: u.arbitrary()?,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Row::take(&mut Unstructured::new(data)) else {
        return;
    };
    let f = fixture();
    let mut row = if input.from_sealed {
        f.sealed.clone()
    } else {
        SealedRow {
            key: RecordKey::new("", "", ""),
            key_id: 0,
            nonce: Vec::new(),
            ciphertext: Vec::new(),
            version: 0,
            expires_at: None,
            seal_format: seal_format::VERSIONED,
        }
    };
    if let Some(v) = input.namespace {
        row.key.namespace = v;
    }
    if let Some(v) = input.owner {
        row.key.owner = v;
    }
    if let Some(v) = input.name {
        row.key.name = v;
    }
    if let Some(v) = input.key_id {
        row.key_id = v;
    }
    if let Some(v) = input.nonce {
        row.nonce = v;
    }
    if let Some(v) = input.ciphertext {
        row.ciphertext = v;
    }
    for (byte, flip) in row.ciphertext.iter_mut().zip(&input.flip) {
        *byte ^= flip;
    }
    if let Some(v) = input.version {
        row.version = v;
    }
    if let Some(v) = input.seal_format {
        row.seal_format = v;
    }
    if let Ok(value) = f.ring.open_row(&row) {
        // Integrity: only the sealed row, unchanged, opens.
        assert_eq!(value.as_bytes(), b"value");
        assert_eq!(row.key, f.sealed.key);
        assert_eq!(row.version, f.sealed.version);
        assert_eq!(row.ciphertext, f.sealed.ciphertext);
        assert_eq!(row.nonce, f.sealed.nonce);
    }
    if let Some((id, wrapped, nonce, format)) = input.data_key {
        let stored = WrappedDataKey {
            id: id.max(3),
            wrapped,
            nonce,
            master_fingerprint: String::new(),
            created_at: 0,
            encryptions: 0,
            wrap_format: format,
        };
        // A forged data key never unwraps under the master key.
        assert!(fuzzing::unwrap_row(&f.ring, &stored).is_err());
    }
    if let Some(text) = input.master_text {
        let _ = MasterKey::from_base64(&text);
    }
});
