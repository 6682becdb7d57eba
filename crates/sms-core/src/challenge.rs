//! The digests signed by secret owners, schedulers and workers (docs/iexec-compatibility.md §2).

use alloy_primitives::{Address, B256, keccak256};

use crate::hash::{keccak_concat, keccak_utf8};

/// Domain separator string hashed into every secret challenge.
pub const DOMAIN: &str = "IEXEC_SMS_DOMAIN";

/// The app developer secret is hashed under the historic fixed index "1".
pub const APP_DEVELOPER_SECRET_INDEX: &str = "1";

fn domain_hash() -> B256 {
    keccak_utf8(DOMAIN)
}

/// Dataset key (web3 secret): `keccak(K(DOMAIN) ‖ address ‖ keccak(value))`.
pub fn web3_secret(address: &[u8], value: &[u8]) -> B256 {
    keccak_concat(&[
        domain_hash().as_slice(),
        address,
        keccak256(value).as_slice(),
    ])
}

/// Named secrets (web2, requester, app developer):
/// `keccak(K(DOMAIN) ‖ address ‖ keccak(name) ‖ keccak(value))`.
pub fn named_secret(address: &[u8], name: &str, value: &[u8]) -> B256 {
    keccak_concat(&[
        domain_hash().as_slice(),
        address,
        keccak_utf8(name).as_slice(),
        keccak256(value).as_slice(),
    ])
}

/// App developer secret: a named secret under the name "1".
pub fn app_developer_secret(app: &Address, value: &[u8]) -> B256 {
    named_secret(app.as_slice(), APP_DEVELOPER_SECRET_INDEX, value)
}

/// What a workerpool owner signs to obtain a task's enclave challenge: `keccak(taskId)`.
pub fn enclave_challenge_request(task_id: &B256) -> B256 {
    keccak256(task_id.as_slice())
}

/// Domain string of the explain request: a scheduler's enclave-challenge signature (sent for
/// every task) does not open `/tee/explain`, nor the reverse.
pub const EXPLAIN_DOMAIN: &str = "IEXEC_SMS_EXPLAIN";

/// What a workerpool owner signs to read a task's explanation:
/// `keccak(K(EXPLAIN_DOMAIN) ‖ taskId)`.
pub fn explain_request(task_id: &B256) -> B256 {
    keccak_concat(&[keccak_utf8(EXPLAIN_DOMAIN).as_slice(), task_id.as_slice()])
}

/// WorkerpoolAuthorization hash: `keccak(worker ‖ taskId ‖ enclaveChallenge)` (72 bytes).
pub fn workerpool_authorization(
    worker: &Address,
    task_id: &B256,
    enclave_challenge: &Address,
) -> B256 {
    keccak_concat(&[
        worker.as_slice(),
        task_id.as_slice(),
        enclave_challenge.as_slice(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::decode_lenient;
    use alloy_primitives::eip191_hash_message;

    fn h(s: &str) -> B256 {
        s.parse().unwrap()
    }
    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    // reference/iexec-sms-behaviour.md §2.5
    #[test]
    fn domain_constant() {
        assert_eq!(
            domain_hash(),
            h("0x0a26923d45a019b77e856d0001681f98ab9707ec15b2b98048cc91eed00b6793")
        );
    }

    #[test]
    fn requester_challenge_of_empty_values() {
        let c = named_secret(&[], "0", b"");
        assert_eq!(
            c,
            h("0x31991eefc2731228bdd25dbc5a242722eda3869f9b06536dbd96a774e5228509")
        );
        assert_eq!(
            eip191_hash_message(c.as_slice()),
            h("0xba970593c25cb2e1c0a4a8dc1e1eeeedf88a75e905b88c9dd739cee4f413c0da")
        );
    }

    #[test]
    fn web3_challenge_with_odd_length_address() {
        let c = web3_secret(&decode_lenient("0x123").unwrap(), b"ghijk");
        assert_eq!(
            c,
            h("0x8d0b92aaf96f66f172d7615b81f257ebdece2278b7da6c60127cad45852eaaf6")
        );
        assert_eq!(
            eip191_hash_message(c.as_slice()),
            h("0x7fe1a81f547c6b0f73bddccb13dbf462e7b0b9ad5ce3200c7f39049a1ac99c62")
        );
    }

    #[test]
    fn web2_and_app_challenges() {
        let owner = a("0x123790ae4E14865B972ee04a5f9FD5fB153Cd5e7");
        assert_eq!(
            named_secret(
                owner.as_slice(),
                "iexec-result-iexec-ipfs-token",
                b"my-token"
            ),
            h("0x95515db816cf766e6db15d919f8db45c82b8dfcda3421c650f8a03b8072e7807")
        );
        assert_eq!(
            app_developer_secret(&a("0xabcd1339ec7e762e639f4887e2bfe5ee8023e23e"), b"secret"),
            h("0x5c3eb156c8380c4e2beedded622e9f420e2c76ee922a4fb297182e4b4e8872ef")
        );
    }

    #[test]
    fn tee_hashes() {
        assert_eq!(
            enclave_challenge_request(&B256::repeat_byte(0x11)),
            h("0xb569321de72d0af89c2fb48a484de3fc9343f31600ae1f3e13d633cb48cbf816")
        );
        assert_eq!(
            workerpool_authorization(
                &Address::repeat_byte(0x22),
                &B256::repeat_byte(0x11),
                &Address::repeat_byte(0x33)
            ),
            h("0xf6413498af46052bdc867c6cad72b984ef59789e72f8998336ccd7d9a38eeb64")
        );
        // reference/iexec-client-chain.md §10.1, §10.2
        let task = h("0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28");
        assert_eq!(
            workerpool_authorization(
                &a("0x1234567890abcdef1234567890abcdef12345678"),
                &task,
                &a("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
            ),
            h("0x82cbc20d9305d484942c6204c6ab73294778624b7deb800795ebc2a4dfbe9427")
        );
        assert_eq!(
            enclave_challenge_request(&task),
            h("0x58adad5474457d67064ad62f57899954693f889e264c524c23a7d5b29c668d80")
        );
    }

    // reference/iexec-client-chain.md §14: the SDK test wallet signs each kind of push.
    #[test]
    fn sdk_wallet_signatures() {
        use crate::signature::sign_eip191;
        let signer: alloy_signer_local::PrivateKeySigner =
            "0x564a9db84969c8159f7aa3d5393c5ecd014fce6a375842a45b12af6677b12407"
                .parse()
                .unwrap();
        assert_eq!(
            signer.address(),
            a("0x7bd4783FDCAD405A28052a0d1f11236A741da593")
        );
        let cases = [
            (
                named_secret(
                    signer.address().as_slice(),
                    "iexec-result-encryption-public-key",
                    b"LS0tLS1CRUdJTg==",
                ),
                "0x150e5431c6c457171bca15d49853b2243b6b73c18c4fa2f78c6be056a5b8c79d",
                "0x6234f697d47abc3ae877adf38124f70a331dee26d7efda48b9cbe4ec3be7f0f63139814805bedddfcb349d63604ae71fdac03ac4bcc86d11622cf21adf93f1bc1b",
            ),
            (
                named_secret(signer.address().as_slice(), "foo", b"secret"),
                "0x1db3b37fcf72f07d19a870dc3197fcb17092ee98eddb5df106817219007f80d6",
                "0x349a92b8f7728e8e678660b333df10dbee04390fab31df8ffe75e0a5fd66882d467f3791c2a36a2faecd9dbee03d871113c46bb100e18b24cf9b653f57d9c58a1b",
            ),
            (
                web3_secret(
                    a("0x2Ad5773db1a705DB568fAd403cd247fee4808Fb8").as_slice(),
                    b"ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=",
                ),
                "0xb0ff2241395099f9c11a6fdf5f39da57ed9a33ebe8509d2b3ce487a81be0f918",
                "0x2a62f0105e6185568760bc83b88c657ca9196e8077f9262ebaf6e1b8712fa45e0459b534a3dd2aa6bd99ee4822b4afe57a958d246d5f5fa8084ec87e358769031b",
            ),
            (
                app_developer_secret(
                    &a("0x76fE91568d50C5fF9411223df5A0c50Ec5fa326A"),
                    b"my-app-secret",
                ),
                "0x765109d8317d9d57836e3b00556c9b284c84d647bfe22529d44fe5f3daa999d1",
                "0x8727d28ddb5e60d2fa8b38c5360b55ab276653cc91afd0c4c7429f37bf4647132a1ed0810ffb29ec57225610942d96bc8ed86ae4723cb404ad31d659bacaf6e01c",
            ),
        ];
        for (challenge, expected_challenge, expected_auth) in cases {
            assert_eq!(challenge, h(expected_challenge));
            assert_eq!(sign_eip191(&signer, &challenge).to_hex(), expected_auth);
        }
    }
}
